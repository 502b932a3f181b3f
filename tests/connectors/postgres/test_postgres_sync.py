"""PostgreSQL -> PostgreSQL through the engine, on a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import pg_exec, pg_rows

from openfuse_connectors import SchemaDriftError, SourceUnreachableError, parse_pipeline
from openfuse_connectors.engine import run_pipeline, run_stream
from openfuse_connectors.registry import get_registry

pytestmark = pytest.mark.postgres

SOURCE_DDL = """
CREATE TABLE public.orders (
    id bigint PRIMARY KEY, name varchar(40), qty int, amount numeric(12,2),
    updated_at timestamptz NOT NULL, doc jsonb, ref uuid, tags text[], raw bytea, day date
)
"""


def seed(src: str, n: int, start: int = 1, ts: str = "2024-01-01 00:00:00+00") -> None:
    pg_exec(
        src,
        f"""INSERT INTO public.orders SELECT g, 'name ' || g, g % 7, g * 1.25, '{ts}'::timestamptz + g * interval '1 second',
            jsonb_build_object('g', g, 'é', '😀'), md5(g::text)::uuid, ARRAY['a', g::text], decode('00ff', 'hex'),
            date '2000-01-01' + g
            FROM generate_series({start}, {start + n - 1}) g""",
    )


def spec(src: str, dst: str, **stream: object) -> object:
    s = {"name": "public.orders", "mode": "full_refresh_overwrite", **stream}
    return parse_pipeline(
        {
            "name": "t",
            "source": {"connector": "postgres", "config": {"dsn": src}},
            "destination": {"connector": "postgres", "config": {"dsn": dst, "schema": "analytics"}},
            "streams": [s],
        }
    )


def table_digest(url: str, table: str) -> list[tuple]:
    return pg_rows(
        url,
        f"SELECT id, name, qty, amount, updated_at, doc::text, ref, tags, raw, day FROM {table} ORDER BY id",
    )


@pytest.fixture
def pair(pg_pair: tuple[str, str]) -> tuple[str, str]:
    src, _ = pg_pair
    pg_exec(src, SOURCE_DDL)
    return pg_pair


@pytest.mark.parametrize("passthrough", [True, False], ids=["copy-passthrough", "arrow"])
def test_full_refresh_overwrite_is_exact_and_keeps_native_types(
    pair: tuple[str, str], passthrough: bool
) -> None:
    src, dst = pair
    seed(src, 2500)
    [r] = run_pipeline(spec(src, dst, passthrough=passthrough))
    assert r.ok, r.error
    assert r.passthrough is passthrough
    assert r.rows_written == 2500
    assert table_digest(dst, "analytics.orders") == table_digest(src, "public.orders")
    types = dict(
        pg_rows(
            dst,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema='analytics' AND table_name='orders'",
        )
    )
    assert types["doc"] == "jsonb" and types["ref"] == "uuid" and types["amount"] == "numeric"
    # A second full refresh replaces, never appends.
    pg_exec(src, "DELETE FROM public.orders WHERE id > 2000")
    [r2] = run_pipeline(spec(src, dst, passthrough=passthrough))
    assert r2.ok and pg_rows(dst, "SELECT count(*) FROM analytics.orders") == [(2000,)]


def test_full_refresh_append_appends(pair: tuple[str, str]) -> None:
    src, dst = pair
    seed(src, 10)
    p = spec(src, dst, mode="full_refresh_append")
    run_pipeline(p)
    run_pipeline(p)
    assert pg_rows(dst, "SELECT count(*), count(DISTINCT id) FROM analytics.orders") == [(20, 10)]


def test_incremental_append_boundary_rows_neither_lost_nor_duplicated(pair: tuple[str, str]) -> None:
    src, dst = pair
    # 5 rows sharing one cursor value; after the first run 3 more arrive with the same value.
    pg_exec(
        src,
        "INSERT INTO public.orders (id, name, updated_at) SELECT g, 'x', '2024-01-01' FROM generate_series(1, 5) g",
    )
    p = spec(src, dst, mode="incremental_append", cursor_field="updated_at", primary_key=["id"])
    [r1] = run_pipeline(p)
    assert r1.rows_written == 5
    pg_exec(
        src,
        "INSERT INTO public.orders (id, name, updated_at) SELECT g, 'late', '2024-01-01' FROM generate_series(6, 8) g",
    )
    [r2] = run_pipeline(p)
    assert r2.rows_written == 3
    [r3] = run_pipeline(p)
    assert r3.rows_written == 0
    assert pg_rows(dst, "SELECT count(*), count(DISTINCT id) FROM analytics.orders") == [(8, 8)]


def test_incremental_dedupe_newest_cursor_wins(pair: tuple[str, str]) -> None:
    src, dst = pair
    seed(src, 1000)
    p = spec(src, dst, mode="incremental_dedupe", cursor_field="updated_at", primary_key=["id"])
    [r1] = run_pipeline(p)
    assert r1.rows_written == 1000
    pg_exec(src, "UPDATE public.orders SET name = 'changed', updated_at = '2030-01-01' WHERE id <= 100")
    seed(src, 5, start=1001, ts="2030-01-01")
    [r2] = run_pipeline(p)
    assert r2.rows_written == 105
    assert r2.cursor_before is not None and r2.cursor_after > r2.cursor_before
    assert table_digest(dst, "analytics.orders") == table_digest(src, "public.orders")
    [r3] = run_pipeline(p)
    assert r3.rows_written == 0


def test_freeze_fails_with_a_diff_and_changes_nothing(pair: tuple[str, str]) -> None:
    src, dst = pair
    seed(src, 10)
    p = spec(src, dst, mode="full_refresh_append")
    run_pipeline(p)
    pg_exec(src, "ALTER TABLE public.orders ADD COLUMN extra text")
    frozen = p.model_copy(update={"schema_drift": "freeze"})
    ex = get_registry().extractor("postgres", {"dsn": src})
    ld = get_registry().loader("postgres", {"dsn": dst, "schema": "analytics"})
    with pytest.raises(SchemaDriftError, match=r"\+ extra: string"):
        run_stream(frozen, frozen.streams[0], ex, ld)
    assert pg_rows(dst, "SELECT count(*) FROM analytics.orders") == [(10,)]


def test_evolve_adds_new_column(pair: tuple[str, str]) -> None:
    src, dst = pair
    seed(src, 10)
    p = spec(src, dst, mode="full_refresh_append")
    run_pipeline(p)
    pg_exec(
        src, "ALTER TABLE public.orders ADD COLUMN extra text", "UPDATE public.orders SET extra = 'e' || id"
    )
    [r] = run_pipeline(p)
    assert r.ok and any("extra" in c for c in r.schema_changes)
    assert pg_rows(dst, "SELECT count(*), count(extra) FROM analytics.orders") == [(20, 10)]


def test_quarantine_keeps_destination_schema_and_counts_rows(pair: tuple[str, str]) -> None:
    src, dst = pair
    pg_exec(
        src,
        "CREATE TABLE public.m (id int PRIMARY KEY, v text)",
        "INSERT INTO public.m VALUES (1, '10'), (2, '20')",
    )
    p = parse_pipeline(
        {
            "name": "q",
            "schema_drift": "quarantine",
            "source": {"connector": "postgres", "config": {"dsn": src}},
            "destination": {"connector": "postgres", "config": {"dsn": dst}},
            "streams": [{"name": "public.m", "mode": "full_refresh_append"}],
        }
    )
    pg_exec(dst, "CREATE TABLE public.m (id int PRIMARY KEY, v bigint)")
    pg_exec(src, "INSERT INTO public.m VALUES (3, 'not a number')")
    [r] = run_pipeline(p)
    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (2, 1)
    [(field, value, reason, pos)] = pg_rows(
        dst, "SELECT field, value, reason, position FROM public._openfuse_quarantine"
    )
    assert field == "v" and value == "not a number" and "int64" in reason and pos == 2


def test_hostile_names_are_quoted(pg_pair: tuple[str, str]) -> None:
    src, dst = pg_pair
    pg_exec(
        src,
        'CREATE TABLE public."we""ird; DROP TABLE x" ("co""l;--" int PRIMARY KEY, "Ü name" text)',
        'INSERT INTO public."we""ird; DROP TABLE x" VALUES (1, \'a\'), (2, NULL)',
    )
    for passthrough in (True, False):
        p = parse_pipeline(
            {
                "name": "h",
                "source": {"connector": "postgres", "config": {"dsn": src}},
                "destination": {"connector": "postgres", "config": {"dsn": dst, "schema": 'sch"ema'}},
                "streams": [
                    {
                        "name": 'public.we"ird; DROP TABLE x',
                        "destination_table": "weird",
                        "passthrough": passthrough,
                    }
                ],
            }
        )
        [r] = run_pipeline(p)
        assert r.ok, r.error
        assert pg_rows(dst, 'SELECT "co""l;--", "Ü name" FROM "sch""ema".weird ORDER BY 1') == [
            (1, "a"),
            (2, None),
        ]


def test_unreachable_server_names_host_port_database_not_password() -> None:
    ex = get_registry().extractor(
        "postgres", {"dsn": "postgresql://u:s3cret-pw@127.0.0.1:1/nodb", "connect_timeout": 2}
    )
    t0 = time.monotonic()
    with pytest.raises(SourceUnreachableError) as ei:
        ex.check()
    assert time.monotonic() - t0 < 10
    msg = str(ei.value)
    assert "127.0.0.1" in msg and "port=1" in msg and "nodb" in msg
    assert "s3cret-pw" not in msg


def test_discover_reports_types_keys_and_cursor_candidates(pair: tuple[str, str]) -> None:
    src, _ = pair
    ex = get_registry().extractor("postgres", {"dsn": src})
    [info] = [s for s in ex.discover() if s.name == "public.orders"]
    assert info.primary_key == ("id",)
    assert "updated_at" in info.cursor_candidates
    assert str(info.schema.field("amount").type) == "decimal128(12, 2)"


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from openfuse_connectors import parse_pipeline
    from openfuse_connectors.engine import run_pipeline
    import openfuse_connectors.builtin.postgres.loader as L
    orig = L._PgLoad.write
    def slow_write(self, batch):
        orig(self, batch)
        print("BATCH", flush=True)
        time.sleep(0.2)
    L._PgLoad.write = slow_write
    src, dst, mode = sys.argv[1:4]
    stream = {"name": "public.orders", "mode": mode, "passthrough": False}
    if mode.startswith("incremental"):
        stream.update(cursor_field="updated_at", primary_key=["id"])
    p = parse_pipeline({"name": "k", "batch_size": 100,
        "source": {"connector": "postgres", "config": {"dsn": src}},
        "destination": {"connector": "postgres", "config": {"dsn": dst, "schema": "analytics"}},
        "streams": [stream]})
    [r] = run_pipeline(p)
    assert r.ok, r.error
    print("DONE", flush=True)
""")


@pytest.mark.parametrize("mode", ["full_refresh_overwrite", "incremental_append", "incremental_dedupe"])
def test_sigkill_mid_load_then_rerun_gives_exactly_the_source_rows(
    pair: tuple[str, str], tmp_path: Path, mode: str
) -> None:
    src, dst = pair
    seed(src, 3000)
    script = tmp_path / "k.py"
    script.write_text(KILL_SCRIPT)
    # First a complete run, then a change, then a run killed after its second batch.
    subprocess.run(
        [sys.executable, str(script), src, dst, mode], check=True, capture_output=True, timeout=120
    )
    before = table_digest(dst, "analytics.orders")
    pg_exec(
        src,
        "UPDATE public.orders SET name = 'v2', updated_at = updated_at + interval '10 years' WHERE id % 3 = 0",
    )
    seed(src, 1500, start=3001, ts="2040-01-01")
    proc = subprocess.Popen([sys.executable, str(script), src, dst, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if line.startswith("BATCH"):
            seen += 1
            if seen == 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.stdout.close()
    proc.wait(timeout=30)
    assert seen == 2, "the load finished before it could be killed; use smaller batches"
    assert proc.returncode == -signal.SIGKILL
    # The killed load left the destination exactly as it was.
    assert table_digest(dst, "analytics.orders") == before
    subprocess.run(
        [sys.executable, str(script), src, dst, mode], check=True, capture_output=True, timeout=120
    )
    after = table_digest(dst, "analytics.orders")
    if mode == "incremental_append":
        # Append keeps history: every source row version appears exactly once per change.
        ids = [r[0] for r in after]
        assert len(ids) == 3000 + 1000 + 1500
        assert {r[0] for r in after} == {r[0] for r in table_digest(src, "public.orders")}
    else:
        assert after == table_digest(src, "public.orders")
    leftovers = pg_rows(
        dst,
        "SELECT relname FROM pg_class WHERE relname LIKE '\\_openfuse\\_stage%' OR relname LIKE '\\_openfuse\\_in%'",
    )
    assert leftovers == []


def test_full_refresh_passthrough_writes_frozen_all_visible_pages(pair: tuple[str, str]) -> None:
    """The staging table is created in the load's transaction, so its COPY runs with FREEZE: after
    the swap every page is all-visible and all-frozen (no hint-bit rewrite on the first read, no
    vacuum needed for index-only scans). A later append into that table (not created by its
    transaction, where PostgreSQL refuses FREEZE) loads as before."""
    src, dst = pair
    seed(src, 20_000)
    [r] = run_pipeline(spec(src, dst))
    assert r.ok and r.passthrough, r.error
    pg_exec(dst, "CREATE EXTENSION IF NOT EXISTS pg_visibility")
    [(pages, visible, frozen)] = pg_rows(
        dst,
        "SELECT pg_relation_size('analytics.orders') / current_setting('block_size')::int,"
        " all_visible, all_frozen FROM pg_visibility_map_summary('analytics.orders')",
    )
    assert pages > 10 and visible == pages and frozen == pages, (pages, visible, frozen)
    [r] = run_pipeline(spec(src, dst, mode="full_refresh_append"))
    assert r.ok and r.rows_written == 20_000, r.error
    assert pg_rows(dst, "SELECT count(*), count(DISTINCT id) FROM analytics.orders") == [(40_000, 20_000)]


def test_passthrough_readers_agree_byte_for_byte(pair: tuple[str, str]) -> None:
    """The psql reader and the in-process fallback thread hand over identical COPY bytes."""
    import shutil

    from openfuse_connectors.builtin.postgres.config import PostgresConfig
    from openfuse_connectors.builtin.postgres.extractor import _psql_copy_out, _psql_env, _thread_copy_out

    src, _ = pair
    seed(src, 5000)
    cfg = PostgresConfig.model_validate({"dsn": src})
    sql = "COPY (SELECT * FROM public.orders ORDER BY id) TO STDOUT (FORMAT binary)"
    env = _psql_env(cfg)
    psql = shutil.which("psql")
    assert psql and env is not None
    a = b"".join(_psql_copy_out(psql, env, sql, cfg))
    b = b"".join(_thread_copy_out(cfg, sql))
    assert a == b and len(a) > 5000 * 50
    # An error on the source side surfaces as an error, not as a short stream.
    with pytest.raises(Exception, match="does not exist"):
        b"".join(_psql_copy_out(psql, env, sql.replace("public.orders", "public.nope"), cfg))
    with pytest.raises(Exception, match="does not exist"):
        b"".join(_thread_copy_out(cfg, sql.replace("public.orders", "public.nope")))


def test_transforms_skip_the_passthrough_and_apply(pair: tuple[str, str]) -> None:
    src, dst = pair
    seed(src, 50)
    p = spec(
        src,
        dst,
        transforms=[
            {"type": "filter", "expr": "qty > 3"},
            {"type": "mask", "columns": ["name"], "keep_last": 2},
        ],
    )
    [r] = run_pipeline(p)
    assert r.ok, r.error
    assert r.passthrough is False
    want = pg_rows(src, "SELECT count(*) FROM public.orders WHERE qty > 3")[0][0]
    assert r.rows_written == want
    names = [n for (n,) in pg_rows(dst, "SELECT name FROM analytics.orders")]
    assert names and all(set(n[:-2]) == {"*"} for n in names)
    assert not any(n.startswith("name") for n in names)


def test_parallel_first_loads_into_a_fresh_schema_do_not_race(pair: tuple[str, str]) -> None:
    """Streams loading at once into a schema that does not exist yet (as Dagster runs them)."""
    from concurrent.futures import ThreadPoolExecutor

    src, dst = pair
    seed(src, 100)
    streams = [
        {"name": "public.orders", "destination_table": f"t{i}", "mode": "full_refresh_append"}
        for i in range(6)
    ]
    p = parse_pipeline(
        {
            "name": "par",
            "source": {"connector": "postgres", "config": {"dsn": src}},
            "destination": {"connector": "postgres", "config": {"dsn": dst, "schema": "fresh"}},
            "streams": streams,
        }
    )
    reg = get_registry()

    def one(i: int) -> object:
        ex = reg.extractor("postgres", {"dsn": src})
        ld = reg.loader("postgres", {"dsn": dst, "schema": "fresh"})
        return run_stream(p, p.streams[i], ex, ld)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert all(r.rows_written == 100 for r in results)  # type: ignore[attr-defined]
    assert pg_rows(dst, "SELECT count(*) FROM fresh._openfuse_state") == [(6,)]


def test_dedupe_into_a_table_without_a_unique_key_uses_merge(pair: tuple[str, str]) -> None:
    """A destination table created elsewhere, without a key constraint: MERGE, same result."""
    src, dst = pair
    seed(src, 20)
    pg_exec(dst, "CREATE SCHEMA analytics")
    import psycopg

    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS analytics.orders2 (id bigint, name varchar(40), qty int, amount numeric(12,2), "
            "updated_at timestamptz NOT NULL, doc jsonb, ref uuid, tags text[], raw bytea, day date)"
        )
    p = spec(
        src,
        dst,
        mode="incremental_dedupe",
        cursor_field="updated_at",
        primary_key=["id"],
        destination_table="orders2",
    )
    run_pipeline(p)
    pg_exec(src, "UPDATE public.orders SET name = 'm', updated_at = '2031-01-01' WHERE id <= 5")
    [r] = run_pipeline(p)
    assert r.ok and r.rows_written == 5
    assert table_digest(dst, "analytics.orders2") == table_digest(src, "public.orders")
    keys = pg_rows(dst, "SELECT count(*) FROM pg_index WHERE indrelid = 'analytics.orders2'::regclass")
    assert keys == [(0,)]  # still no index: the MERGE path did the work
