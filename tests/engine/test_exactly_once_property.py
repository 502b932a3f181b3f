"""Property: whatever the interleaving of source changes and runs, no row is lost or duplicated.

The source clock only moves forward (ties are common on purpose: many rows share a cursor value,
the hard case for cursor-based loads). After every run the destination must hold:

* full_refresh_overwrite: exactly the source rows;
* incremental_dedupe: exactly the source rows (latest version of each key);
* incremental_append: every version of every row that existed at some run, each exactly once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openfuse_connectors.engine import run_pipeline
from openfuse_connectors.spec import parse_pipeline
from openfuse_connectors.testing import MemorySource, _registry, sample_rows

pytestmark = pytest.mark.postgres

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

# An operation: ("insert", n) | ("update", k) | ("tick",) | ("run",)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(1, 4)),
        st.tuples(st.just("update"), st.integers(0, 30)),
        st.tuples(st.just("tick")),
        st.tuples(st.just("run")),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=ops, batch_rows=st.integers(1, 4))
def test_no_row_lost_or_duplicated(pg_server: str, script: list[tuple[Any, ...]], batch_rows: int) -> None:
    import psycopg

    schema = f"prop_{uuid.uuid4().hex[:8]}"
    dst = pg_server
    dataset = uuid.uuid4().hex
    reg = _registry()
    modes = {
        "overwrite": {"mode": "full_refresh_overwrite"},
        "dedupe": {"mode": "incremental_dedupe", "cursor_field": "updated_at", "primary_key": ["id"]},
        "append": {"mode": "incremental_append", "cursor_field": "updated_at", "primary_key": ["id"]},
    }
    spec = parse_pipeline(
        {
            "name": "prop",
            "source": {"connector": "memory", "config": {"dataset": dataset}},
            "destination": {"connector": "postgres", "config": {"dsn": dst, "schema": schema}},
            "streams": [{"name": "items", "destination_table": t, **m} for t, m in modes.items()],
        }
    )
    rows: dict[int, dict[str, Any]] = {}
    clock = 0
    seen_versions: set[tuple[int, str | None]] = set()
    next_id = 1
    try:
        for op in [*script, ("run",)]:
            if op[0] == "insert":
                for _ in range(op[1]):
                    [r] = sample_rows([next_id])
                    r["updated_at"] = T0 + dt.timedelta(seconds=clock)
                    rows[next_id] = r
                    next_id += 1
            elif op[0] == "update" and rows:
                key = sorted(rows)[op[1] % len(rows)]
                r = dict(rows[key])
                r["name"] = f"v{uuid.uuid4().hex[:6]}"
                r["updated_at"] = T0 + dt.timedelta(seconds=clock)
                rows[key] = r
            elif op[0] == "tick":
                clock += 1
            elif op[0] == "run":
                MemorySource.put(dataset, "items", list(rows.values()), batch_rows=batch_rows)
                results = run_pipeline(spec, registry=reg)
                assert all(r.ok for r in results), [r.error for r in results]
                seen_versions |= {(r["id"], r["name"]) for r in rows.values()}
                with psycopg.connect(dst) as conn:
                    current = sorted((r["id"], r["name"]) for r in rows.values())
                    for table in ("overwrite", "dedupe"):
                        got = conn.execute(
                            f'SELECT id, name FROM "{schema}"."{table}" ORDER BY id'
                        ).fetchall()
                        assert got == current, table
                    appended = conn.execute(f'SELECT id, name FROM "{schema}".append').fetchall()
                    assert len(appended) == len(set(appended)), "incremental_append duplicated a row"
                    assert set(appended) == seen_versions, "incremental_append lost or invented a row version"
    finally:
        with psycopg.connect(dst, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
