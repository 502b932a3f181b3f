"""PostgreSQL -> Kafka: Debezium envelopes, keys, transactions, key changes, truncates, schema
changes and keyless tables, read back by a separate consumer over TCP (mock cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cdc_support import consume, ordered, pg, rows

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import (
    CdcSettings,
    KafkaChangeSink,
    TableWithoutKeyError,
    run_cdc,
)


def kafka_sink(servers: str, pipeline: str, prefix: str) -> KafkaChangeSink:
    return KafkaChangeSink(KafkaConfig(bootstrap_servers=(servers,)), pipeline=pipeline, topic_prefix=prefix)


def settings(url: str, pipeline: str, *tables: str, **kw: Any) -> CdcSettings:
    return CdcSettings(pipeline=pipeline, source=PostgresConfig(dsn=url), tables=tables, **kw)


def test_changes_reach_kafka_as_debezium_events(source_db: str, kafka_cluster: str, prefix: str) -> None:
    pg(
        source_db,
        "CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric(10,2), at timestamptz, day date)",
        "CREATE TABLE items (order_id int, sku text, qty int, PRIMARY KEY (order_id, sku))",
        "INSERT INTO orders VALUES (1, 'new', 10.50, '2024-01-01 10:00:00.25+00', '2024-01-02')",
    )
    s = settings(source_db, "shop", "public.orders", "public.items")
    first = run_cdc(
        s, [kafka_sink(kafka_cluster, "shop", prefix)], until_caught_up=True, handle_signals=False
    )
    assert first.snapshot_rows == 1

    pg(
        source_db,
        "INSERT INTO orders VALUES (2, 'new', 5, NULL, NULL)",
        # One transaction touching two tables.
        "BEGIN; UPDATE orders SET status = 'paid' WHERE id = 1; "
        "INSERT INTO items VALUES (1, 'a', 2), (2, 'b', 1); COMMIT",
        "UPDATE orders SET id = 20 WHERE id = 2",  # a primary-key change
        "DELETE FROM items WHERE order_id = 2",
        "TRUNCATE items",
        "ALTER TABLE orders ADD COLUMN note text",
        "INSERT INTO orders VALUES (3, 'new', 1, NULL, NULL, 'hello')",
    )
    second = run_cdc(
        s, [kafka_sink(kafka_cluster, "shop", prefix)], until_caught_up=True, handle_signals=False
    )
    assert second.snapshot_rows == 0 and second.transactions == 6

    orders = ordered(consume(kafka_cluster, f"{prefix}.public.orders"))
    items = ordered(consume(kafka_cluster, f"{prefix}.public.items"))
    summary = [(m.op, m.key) for m in orders]
    assert summary == [
        ("r", {"id": 1}),
        ("c", {"id": 2}),
        ("u", {"id": 1}),
        ("d", {"id": 2}),
        (None, {"id": 2}),  # tombstone
        ("c", {"id": 20}),
        ("c", {"id": 3}),
    ]
    snap, created, updated, deleted, _, moved, evolved = orders
    assert snap.value["source"]["snapshot"] == "last" and snap.value["before"] is None
    assert snap.value["after"] == {
        "id": 1,
        "status": "new",
        "amount": "10.50",  # decimal.handling.mode=string
        "at": "2024-01-01T10:00:00.250000Z",  # io.debezium.time.ZonedTimestamp
        "day": 19724,  # io.debezium.time.Date: days since 1970-01-01
    }
    src = created.value["source"]
    assert src["connector"] == "postgresql" and src["name"] == prefix and src["snapshot"] == "false"
    assert (src["db"], src["schema"], src["table"]) == (source_db.rsplit("/", 1)[1], "public", "orders")
    assert isinstance(src["lsn"], int) and isinstance(src["txId"], int) and src["ts_ms"] > 0
    assert updated.value["before"] is None  # REPLICA IDENTITY DEFAULT: no old row
    assert updated.value["after"]["status"] == "paid"
    assert deleted.value["before"] == {"id": 2, "status": None, "amount": None, "at": None, "day": None}
    assert deleted.value["after"] is None
    assert moved.value["after"]["id"] == 20 and moved.value["after"]["amount"] == "5.00"
    assert deleted.value["source"]["lsn"] == moved.value["source"]["lsn"]  # one source change
    assert evolved.value["after"]["note"] == "hello"  # the new column appears downstream

    assert [(m.op, m.key) for m in items] == [
        ("c", {"order_id": 1, "sku": "a"}),
        ("c", {"order_id": 2, "sku": "b"}),
        ("d", {"order_id": 2, "sku": "b"}),
        (None, {"order_id": 2, "sku": "b"}),
        ("t", None),
    ]
    # The two-table transaction: one txId and one commit LSN on both topics.
    assert items[0].value["source"]["txId"] == updated.value["source"]["txId"]
    assert items[0].value["source"]["commit_lsn"] == updated.value["source"]["commit_lsn"]
    # Events are in commit order.
    commits = [m.value["source"]["commit_lsn"] for m in orders[1:] if m.value]
    assert commits == sorted(commits)


def test_keyless_table_with_replica_identity_full_is_keyed_by_the_whole_row(
    source_db: str, kafka_cluster: str, prefix: str
) -> None:
    pg(source_db, "CREATE TABLE logs (msg text, n int)", "ALTER TABLE logs REPLICA IDENTITY FULL")
    s = settings(source_db, "logs", "public.logs")
    run_cdc(s, [kafka_sink(kafka_cluster, "logs", prefix)], until_caught_up=True, handle_signals=False)
    pg(
        source_db,
        "INSERT INTO logs VALUES ('a', 1), ('a', 1)",
        "UPDATE logs SET n = 2 WHERE ctid = (SELECT ctid FROM logs LIMIT 1)",
        "DELETE FROM logs WHERE n = 2",
    )
    run_cdc(s, [kafka_sink(kafka_cluster, "logs", prefix)], until_caught_up=True, handle_signals=False)
    msgs = [m for m in ordered(consume(kafka_cluster, f"{prefix}.public.logs")) if m.value is not None]
    assert [(m.op, m.key) for m in msgs] == [
        ("c", {"msg": "a", "n": 1}),
        ("c", {"msg": "a", "n": 1}),
        ("d", {"msg": "a", "n": 1}),  # an update of a keyless row: delete of the old row...
        ("c", {"msg": "a", "n": 2}),  # ...and create of the new one
        ("d", {"msg": "a", "n": 2}),
    ]
    assert msgs[2].value["before"] == {"msg": "a", "n": 1}  # FULL: the whole old row


def test_table_without_key_or_full_identity_is_refused_before_it_joins_a_publication(
    source_db: str, kafka_cluster: str, prefix: str
) -> None:
    pg(source_db, "CREATE TABLE events (msg text)")
    s = settings(source_db, "events", "public.events")
    with pytest.raises(TableWithoutKeyError) as e:
        run_cdc(s, [kafka_sink(kafka_cluster, "events", prefix)], handle_signals=False)
    assert "ALTER TABLE public.events REPLICA IDENTITY FULL" in str(e.value)
    # Nothing was created: the application's UPDATEs on the table keep working.
    assert rows(source_db, "SELECT count(*) FROM pg_publication") == [(0,)]
    pg(source_db, "INSERT INTO events VALUES ('x')", "UPDATE events SET msg = 'y'")


def test_unchanged_toasted_values_use_debeziums_placeholder(
    source_db: str, kafka_cluster: str, prefix: str
) -> None:
    pg(source_db, "CREATE TABLE docs (id int PRIMARY KEY, body text, title text)")
    pg(source_db, "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL")
    s = settings(source_db, "docs", "public.docs")
    run_cdc(s, [kafka_sink(kafka_cluster, "docs", prefix)], until_caught_up=True, handle_signals=False)
    pg(
        source_db,
        "INSERT INTO docs VALUES (1, repeat('x', 10000), 'a')",
        "UPDATE docs SET title = 'b' WHERE id = 1",
    )
    run_cdc(s, [kafka_sink(kafka_cluster, "docs", prefix)], until_caught_up=True, handle_signals=False)
    msgs = ordered(consume(kafka_cluster, f"{prefix}.public.docs"))
    assert [m.op for m in msgs] == ["c", "u"]
    assert msgs[0].value["after"]["body"] == "x" * 10000
    assert msgs[1].value["after"] == {"id": 1, "body": "__debezium_unavailable_value", "title": "b"}
    assert json.loads(json.dumps(msgs[1].key)) == {"id": 1}
