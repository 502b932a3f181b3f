"""A runner killed with SIGKILL between publishing and committing the position loses nothing:
Kafka gets every change at least once (a duplicate has the same key and LSNs), the PostgreSQL
destination (shared server, `pg_db`) gets every change exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cdc_support import consume, pg, replay, rows

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import CdcSettings, KafkaChangeSink, PostgresChangeSink, run_cdc

CHILD = Path(__file__).with_name("cdc_child.py")
REPO = Path(__file__).resolve().parents[2]
OPTIONS = {"max_batch_changes": 12, "max_batch_delay_ms": 0}


def run_child(args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), json.dumps(args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def sinks(kafka: str, prefix: str, dest: str) -> list[Any]:
    return [
        KafkaChangeSink(KafkaConfig(bootstrap_servers=(kafka,)), pipeline="crash", topic_prefix=prefix),
        PostgresChangeSink(PostgresConfig(dsn=dest, schema="mirror"), pipeline="crash"),
    ]


@pytest.mark.parametrize(("kill_point", "duplicates"), [("published", True), ("committed", False)])
def test_sigkill_between_publish_and_position_commit_loses_nothing(
    source_db: str, pg_db: str, kafka_cluster: str, prefix: str, kill_point: str, duplicates: bool
) -> None:
    pg(
        source_db,
        "CREATE TABLE acct (id int PRIMARY KEY, balance int)",
        "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 50) g",
    )
    settings = CdcSettings(
        pipeline="crash", source=PostgresConfig(dsn=source_db), tables=("public.acct",), **OPTIONS
    )
    run_cdc(settings, sinks(kafka_cluster, prefix, pg_db), until_caught_up=True, handle_signals=False)
    for i in range(1, 31):  # 30 transactions, 4 changes each
        pg(
            source_db,
            f"BEGIN; UPDATE acct SET balance = balance - {i} WHERE id = {i}; "
            f"UPDATE acct SET balance = balance + {i} WHERE id = {i + 1}; "
            f"INSERT INTO acct VALUES ({1000 + i}, {i}); DELETE FROM acct WHERE id = {1000 + i - 1}; COMMIT",
        )
    args = {
        "source": source_db,
        "dest": pg_db,
        "kafka": kafka_cluster,
        "prefix": prefix,
        "pipeline": "crash",
        "tables": ["public.acct"],
        "options": OPTIONS,
        "until_caught_up": True,
        "kill_point": kill_point,
        "kill_at": 4,
    }
    child = run_child(args)
    assert child.returncode == -9, child.stderr[-2000:]
    assert child.stdout.count('"committed"') == (3 if kill_point == "published" else 4)
    # Killed mid-way: the destination holds a committed prefix, not everything yet.
    assert rows(pg_db, "SELECT max(id) FROM mirror.acct")[0][0] < 1030

    again = run_cdc(settings, sinks(kafka_cluster, prefix, pg_db), until_caught_up=True, handle_signals=False)
    assert again.stopped_by == "caught_up" and again.snapshot_rows == 0
    want = rows(source_db, "SELECT id, balance FROM acct ORDER BY id")
    assert rows(pg_db, "SELECT id, balance FROM mirror.acct ORDER BY id") == want  # exactly once

    msgs = consume(kafka_cluster, f"{prefix}.public.acct")
    streamed = [m for m in msgs if m.value is not None and m.op != "r"]
    counts = Counter(m.ident for m in streamed)
    assert len(counts) == 30 * 4 - 1  # every change, none lost (the first DELETE matches no row)
    dup = sum(n - 1 for n in counts.values())
    assert (dup > 0) is duplicates  # at-least-once: duplicates carry the same key and LSNs
    table = replay(msgs)
    assert sorted((v["id"], v["balance"]) for v in table.values()) == want
