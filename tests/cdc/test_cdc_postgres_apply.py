"""PostgreSQL -> PostgreSQL through the change applier: the destination (a database on the shared
server, `pg_db`) equals the source after every run, with hard or soft deletes."""

from __future__ import annotations

from typing import Any

from cdc_support import pg, rows

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import DELETED_AT, CdcSettings, PostgresChangeSink, run_cdc


def settings(url: str, pipeline: str, *tables: str, **kw: Any) -> CdcSettings:
    return CdcSettings(pipeline=pipeline, source=PostgresConfig(dsn=url), tables=tables, **kw)


def sink(dest: str, pipeline: str, **kw: Any) -> PostgresChangeSink:
    return PostgresChangeSink(PostgresConfig(dsn=dest, schema="mirror"), pipeline=pipeline, **kw)


def same(source: str, dest: str, table: str, order: str, where: str = "") -> None:
    cols = ", ".join(
        r[0]
        for r in rows(
            source,
            f"SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )
    )
    want = rows(source, f"SELECT {cols} FROM public.{table} ORDER BY {order}")
    got = rows(dest, f"SELECT {cols} FROM mirror.{table} {where} ORDER BY {order}")
    assert got == want


def test_destination_equals_source_through_every_kind_of_change(source_db: str, pg_db: str) -> None:
    pg(
        source_db,
        "CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric(10,2), at timestamptz, "
        "tags text[], doc jsonb, raw bytea, span interval, body text)",
        "ALTER TABLE orders ALTER COLUMN body SET STORAGE EXTERNAL",
        "CREATE TABLE items (order_id int, sku text, qty int, PRIMARY KEY (order_id, sku))",
        "CREATE TABLE logs (msg text, n int)",
        "ALTER TABLE logs REPLICA IDENTITY FULL",
        "INSERT INTO orders SELECT g, 'new', g * 1.25, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour', "
        "ARRAY['a', 'b c'], jsonb_build_object('g', g), '\\x00ff'::bytea, '1 day 2 hours', repeat('z', 5000) "
        "FROM generate_series(1, 50) g",
        "INSERT INTO logs VALUES ('a', 1), ('a', 1), ('b', 2)",
    )
    s = settings(source_db, "mirror", "public.orders", "public.items", "public.logs")
    first = run_cdc(s, [sink(pg_db, "mirror")], until_caught_up=True, handle_signals=False)
    assert first.snapshot_rows == 53
    same(source_db, pg_db, "orders", "id")
    same(source_db, pg_db, "logs", "msg, n")

    pg(
        source_db,
        "BEGIN; UPDATE orders SET status = 'paid' WHERE id <= 10; "
        "INSERT INTO items SELECT g, 'sku' || g, g FROM generate_series(1, 20) g; COMMIT",
        "UPDATE orders SET id = 1000 WHERE id = 5",  # primary-key change
        "UPDATE orders SET status = 'x' WHERE id = 6",  # body is TOASTed and unchanged
        "DELETE FROM orders WHERE id BETWEEN 40 AND 45",
        "INSERT INTO orders (id, status) VALUES (40, 'again')",  # a deleted key comes back
        "BEGIN; DELETE FROM items WHERE order_id > 15; INSERT INTO items VALUES (99, 'late', 1); COMMIT",
        "TRUNCATE items",
        "INSERT INTO items VALUES (7, 'after-truncate', 1)",
        "ALTER TABLE orders ADD COLUMN priority int DEFAULT 3",  # existing rows get 3
        "INSERT INTO orders (id, status, priority) VALUES (2000, 'new', 1)",
        "UPDATE logs SET n = 5 WHERE ctid = (SELECT ctid FROM logs WHERE msg = 'a' LIMIT 1)",
        "DELETE FROM logs WHERE msg = 'b'",
        "INSERT INTO logs VALUES ('a', 1)",
    )
    second = run_cdc(s, [sink(pg_db, "mirror")], until_caught_up=True, handle_signals=False)
    assert second.transactions == 12  # the ALTER TABLE has no row change
    same(source_db, pg_db, "orders", "id")
    same(source_db, pg_db, "items", "order_id, sku")
    same(source_db, pg_db, "logs", "msg, n")
    assert rows(pg_db, "SELECT length(body) FROM mirror.orders WHERE id = 6") == [(5000,)]
    assert rows(pg_db, "SELECT count(*) FROM mirror.orders WHERE priority = 3") == [(45,)]
    # The position is in the destination, written by the same transactions.
    [(state,)] = rows(
        pg_db, "SELECT state FROM mirror._openfuse_state WHERE pipeline = 'mirror' AND stream = '@cdc'"
    )
    [(confirmed,)] = rows(source_db, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots")
    assert state["extra"]["cdc"]["lsn"] == confirmed


def test_soft_deletes_keep_the_row_with_the_delete_time(source_db: str, pg_db: str) -> None:
    pg(
        source_db,
        "CREATE TABLE users (id int PRIMARY KEY, name text)",
        "INSERT INTO users VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')",
    )
    s = settings(source_db, "users", "public.users")
    run_cdc(s, [sink(pg_db, "users", deletes="soft")], until_caught_up=True, handle_signals=False)
    pg(
        source_db,
        "DELETE FROM users WHERE id = 2",
        "DELETE FROM users WHERE id = 3",
        "INSERT INTO users VALUES (3, 'cy2')",
    )
    [(deleted_at,)] = rows(source_db, "SELECT now()")
    run_cdc(s, [sink(pg_db, "users", deletes="soft")], until_caught_up=True, handle_signals=False)
    got = rows(pg_db, f"SELECT id, name, {DELETED_AT} IS NOT NULL FROM mirror.users ORDER BY id")
    assert got == [(1, "ann", False), (2, "bob", True), (3, "cy2", False)]
    [(when,)] = rows(pg_db, f"SELECT {DELETED_AT} FROM mirror.users WHERE id = 2")
    assert abs((when - deleted_at).total_seconds()) < 5  # the source's commit time
    same(source_db, pg_db, "users", "id", where=f"WHERE {DELETED_AT} IS NULL")
    pg(source_db, "TRUNCATE users")
    run_cdc(s, [sink(pg_db, "users", deletes="soft")], until_caught_up=True, handle_signals=False)
    assert rows(pg_db, f"SELECT count(*), count({DELETED_AT}) FROM mirror.users") == [(3, 3)]


def test_a_transaction_larger_than_a_chunk_is_applied_atomically(source_db: str, pg_db: str) -> None:
    pg(
        source_db,
        "CREATE TABLE t (id int PRIMARY KEY, v int)",
        "INSERT INTO t SELECT g, 0 FROM generate_series(1, 3000) g",
    )
    s = settings(source_db, "big", "public.t", chunk_changes=250, max_batch_changes=500)
    run_cdc(s, [sink(pg_db, "big")], until_caught_up=True, handle_signals=False)
    pg(
        source_db,
        "UPDATE t SET v = v + 1",
        "UPDATE t SET v = v + 1 WHERE id % 2 = 0",
        "DELETE FROM t WHERE id > 2900",
    )
    seen: list[int] = []

    def probe(point: str) -> None:
        # Between the chunks of one source transaction the destination shows none of it.
        if point == "published":
            seen.append(rows(pg_db, "SELECT count(*) FROM mirror.t WHERE v = 0")[0][0])

    r = run_cdc(s, [sink(pg_db, "big")], until_caught_up=True, handle_signals=False, hook=probe)
    assert r.changes == 3000 + 1500 + 100
    same(source_db, pg_db, "t", "id")
    assert seen[0] == 3000  # the first big transaction was committed whole, not chunk by chunk


def test_a_partitioned_table_is_captured_as_one_table(source_db: str, pg_db: str) -> None:
    pg(
        source_db,
        "CREATE TABLE ev (id int, region text, n int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
        "CREATE TABLE ev_eu PARTITION OF ev FOR VALUES IN ('eu')",
        "CREATE TABLE ev_us PARTITION OF ev FOR VALUES IN ('us')",
        "INSERT INTO ev VALUES (1, 'eu', 1), (2, 'us', 1)",
    )
    s = settings(source_db, "parts", "public.ev")
    run_cdc(s, [sink(pg_db, "parts")], until_caught_up=True, handle_signals=False)
    pg(
        source_db,
        "INSERT INTO ev VALUES (3, 'us', 1)",
        "UPDATE ev SET n = 2 WHERE id = 1",
        "DELETE FROM ev WHERE id = 2",
    )
    run_cdc(s, [sink(pg_db, "parts")], until_caught_up=True, handle_signals=False)
    same(source_db, pg_db, "ev", "id")
    assert rows(
        pg_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'mirror' AND tablename LIKE 'ev_%'"
    ) == [(0,)]
