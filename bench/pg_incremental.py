#!/usr/bin/env python3
"""PostgreSQL -> PostgreSQL incremental benchmark: OpenFuse incremental_dedupe after 10,000 updated rows.

Rerun (from the repository root; needs python3, psql, GNU time and a PostgreSQL server):

    python bench/pg_incremental.py

Options worth knowing:
    --rows N        source table size (default 1,000,000; public.bench_orders, shared with pg_to_pg.py)
    --updates U     rows updated before each incremental run (default 10,000, spread evenly over the ids)
    --repeat K      runs per measured row, the median is reported (default 3)
    --index MODE    without | with | both (default): measure without and/or with an index on updated_at
    --no-results    do not touch bench/RESULTS.md
    --min-idle F    before each timed run wait (at most --idle-timeout s) until the CPUs are
                    >= F idle over one second (default 0.5; 0 disables): for shared hosts

What it does:
  1. Makes sure public.bench_orders exists with N rows (the generator of pg_to_pg.py, in common.py)
     and puts back any row a previous, interrupted run left updated.
  2. Setup (untimed, but reported): drops the schema bench_incremental of openfuse_bench_dst and
     runs once the pipeline `public.bench_orders`, mode incremental_dedupe, cursor_field
     updated_at, primary_key [id] (the initial load of all N rows).
  3. Per repeat and case: (untimed) UPDATE the same U rows: qty = qty + 1, updated_at = a timestamp later
     than every existing one, one hour later per repeat (one transaction, so all U rows share the
     value, like a batch job stamping now()); CHECKPOINT; (timed) `openfuse run PIPELINE`; then
     (timed) the same run again with nothing new. After each run the destination must hold exactly
     N rows, and sum(qty), max(updated_at) and a checksum of the U updated rows must equal the
     source's; in the last round of each case a checksum of every row and column is compared too.
  4. Two cases, alternating round by round: without an index on updated_at (the generator
     creates none), and with `CREATE INDEX bench_orders_updated_at_idx ON public.bench_orders
     (updated_at)` (created before each indexed round, dropped before each unindexed one and at
     the end; if an index on updated_at was there before, only the indexed case runs).
  5. Baselines, in the same run (after the setup, before the updates): the pass-through full refresh of the same table (pipeline
     full_refresh_overwrite, `openfuse run --full-refresh`, as in pg_to_pg.py) into
     bench_incremental_full, and `openfuse run --full-refresh` of an incremental_dedupe pipeline
     (decoded Arrow path, primary key) into bench_incremental_reload.
  6. Puts the source back: the updated rows get their generated qty and updated_at again, then
     CLUSTER on the primary key (id order, as generated) and VACUUM (FREEZE, ANALYZE), so
     pg_to_pg.py keeps reading the same data in the same layout.
  7. Prints a table and replaces the section "## PostgreSQL → PostgreSQL, incremental_dedupe
     after U updated rows, N rows" of bench/RESULTS.md.

Every run is a subprocess under /usr/bin/time -v (wall time, peak RSS of the largest process,
sampled tree RSS), as in pg_to_pg.py. The target (incremental_dedupe after 10,000 updates <= 2 s)
is reported, never asserted. Exit status: 0 unless a run failed or a check did not hold.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    DST_DB,
    GEN_QTY,
    GEN_UPDATED_AT,
    LOG_DIR,
    OPENFUSE_BIN,
    PG,
    REPO_DIR,
    RESULTS_MD,
    SRC_DB,
    SRC_TABLE,
    Measurement,
    checkpoint,
    dst_row_count,
    ensure_databases,
    ensure_source_table,
    fmt,
    indent,
    load_average,
    machine_info,
    md_table,
    openfuse_version,
    parse_openfuse_summary,
    print_table,
    require_tools,
    reset_schema,
    run_measured,
    tail,
    wait_for_idle,
    warm_source_cache,
    write_pipeline,
    write_results,
)

TARGET_INCREMENTAL_S = 2.0  # incremental_dedupe after 10,000 updated rows, wall time

SCHEMA_INCR = "bench_incremental"
SCHEMA_FULL = "bench_incremental_full"
SCHEMA_RELOAD = "bench_incremental_reload"
INDEX_NAME = "bench_orders_updated_at_idx"
INDEX_SCHEMA = SRC_TABLE.split(".", 1)[0]
DST_NAME = SRC_TABLE.split(".", 1)[1]  # destination table name: bench_orders


@dataclass
class Row:
    key: str
    label: str
    times: list[float] = field(default_factory=list)
    max_rss: list[float] = field(default_factory=list)
    tree_rss: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)  # the stream's seconds as openfuse reports them
    cpu: list[float] = field(default_factory=list)  # user + system CPU s of the openfuse process tree
    rows_read: int | None = None
    rows_written: int | None = None
    error: str = ""
    skipped: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None

    def add(self, m: Measurement) -> None:
        self.times.append(m.seconds)
        self.max_rss.append(m.max_rss_mb or 0.0)
        self.tree_rss.append(m.tree_rss_mb)
        if m.cpu_seconds is not None:
            self.cpu.append(m.cpu_seconds)
        s = parse_openfuse_summary(m.log, SRC_TABLE)
        if s is not None:
            self.engine.append(s.seconds)
            self.rows_read, self.rows_written = s.rows_read, s.rows_written


# --------------------------------------------------------------------------------------------
# Source updates and checks
# --------------------------------------------------------------------------------------------


def id_set_sql(rows: int, updates: int) -> str:
    """`updates` ids spread evenly over 1..rows (1, 1+step, 1+2*step, ...)."""
    step = rows // updates
    return f"SELECT 1 + i * {step}::bigint FROM generate_series(0, {updates - 1}) AS i"


def restore_source(pg: PG) -> int:
    """Give every row its generated qty and updated_at back, and the table its generated layout.

    The updates moved the touched rows to other pages and left dead tuples behind; CLUSTER on the
    primary key rewrites the table in id order, as the generator wrote it (same size, same physical
    order, so pg_to_pg.py reads what it always reads), then VACUUM FREEZE sets the hint bits again.
    """
    qty, ts = GEN_QTY.format(g="id"), GEN_UPDATED_AT.format(g="id")
    out = pg.query(
        SRC_DB,
        f"""
        WITH u AS (UPDATE {SRC_TABLE} SET qty = {qty}, updated_at = {ts}
                   WHERE qty IS DISTINCT FROM {qty} OR updated_at IS DISTINCT FROM {ts}
                   RETURNING 1)
        SELECT count(*) FROM u""",
    )
    n = int(out.splitlines()[-1])
    if n:
        pk = SRC_TABLE.split(".", 1)[1] + "_pkey"
        pg.script(SRC_DB, f"CLUSTER {SRC_TABLE} USING {pk};\nVACUUM (FREEZE, ANALYZE) {SRC_TABLE};")
    return n


def updated_at_indexes(pg: PG) -> list[str]:
    """Indexes of the source table whose first column is updated_at."""
    schema, table = SRC_TABLE.split(".", 1)
    return pg.query(
        SRC_DB,
        f"""
        SELECT i.relname FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
        WHERE n.nspname = '{schema}' AND t.relname = '{table}' AND a.attname = 'updated_at'
        ORDER BY 1""",
    ).splitlines()


def update_rows(pg: PG, ids_sql: str, ts_sql: str) -> None:
    pg.query(SRC_DB, f"UPDATE {SRC_TABLE} SET qty = qty + 1, updated_at = {ts_sql} WHERE id IN ({ids_sql})")


def _summary_sql(table: str, ids_sql: str) -> str:
    return (
        f"SELECT count(*), sum(qty), max(updated_at), "
        f"(SELECT md5(string_agg(id || ':' || qty || ':' || extract(epoch FROM updated_at), ',' ORDER BY id)) "
        f" FROM {table} WHERE id IN ({ids_sql})) FROM {table}"
    )


def _full_checksum_sql(table: str) -> str:
    # Order-independent: the sum of a 60-bit slice of each row's md5 (every column, as text).
    return f"SELECT count(*), sum(('x' || left(md5(t::text), 15))::bit(60)::bigint) FROM {table} t"


def check_destination(pg: PG, schema: str, rows: int, ids_sql: str, full: bool = False) -> tuple[str, str]:
    """('', table) when the destination matches the source, else (what differs, table)."""
    count, where = dst_row_count(pg, schema, DST_NAME)
    if count is None:
        return where, where
    if count != rows:
        return f"row count {count:,} != {rows:,} ({where})", where
    src = pg.query(SRC_DB, _summary_sql(SRC_TABLE, ids_sql)).split("|")
    dst = pg.query(DST_DB, _summary_sql(where, ids_sql)).split("|")
    names = ["count", "sum(qty)", "max(updated_at)", "checksum of the updated rows"]
    diff = [f"{n}: source {s} != destination {d}" for n, s, d in zip(names, src, dst, strict=True) if s != d]
    if not diff and full:
        s_all = pg.query(SRC_DB, _full_checksum_sql(SRC_TABLE))
        d_all = pg.query(DST_DB, _full_checksum_sql(where))
        if s_all != d_all:
            diff.append(f"checksum of all rows and columns: source {s_all} != destination {d_all}")
    return "; ".join(diff), where


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, pg: PG, openfuse_bin: Path, workdir: Path, log_dir: Path, rows: int, updates: int):
        self.pg, self.bin, self.workdir, self.log_dir = pg, openfuse_bin, workdir, log_dir
        self.rows, self.updates = rows, updates
        self.ids_sql = id_set_sql(rows, updates)
        self.failed = False
        self.min_idle, self.idle_timeout = 0.0, 0.0
        self.idle: list[float] = []  # CPU idle fraction in the second before each timed run
        self.waited: list[float] = []  # seconds waited for that
        self.incr = write_pipeline(
            workdir / "incremental.yaml",
            pg,
            "bench_incremental",
            SCHEMA_INCR,
            SRC_TABLE,
            "incremental_dedupe",
            "cursor_field: updated_at",
            "primary_key: [id]",
        )
        self.full = write_pipeline(
            workdir / "full.yaml",
            pg,
            "bench_incremental_full",
            SCHEMA_FULL,
            SRC_TABLE,
            "full_refresh_overwrite",
        )
        self.reload = write_pipeline(
            workdir / "reload.yaml",
            pg,
            "bench_incremental_reload",
            SCHEMA_RELOAD,
            SRC_TABLE,
            "incremental_dedupe",
            "cursor_field: updated_at",
            "primary_key: [id]",
        )

    def run(
        self,
        row: Row,
        pipeline: Path,
        tag: str,
        *flags: str,
        expect_written: int | None = None,
        schema: str = SCHEMA_INCR,
        full_check: bool = False,
    ) -> bool:
        """One timed `openfuse run`, then the (untimed) checks; False when the run failed."""
        if self.min_idle > 0:
            idle, waited = wait_for_idle(self.min_idle, self.idle_timeout)
            self.idle.append(idle)
            self.waited.append(waited)
            if idle < self.min_idle:
                print(f"  (machine still busy after {waited:.0f} s: {idle:.0%} idle; running anyway)")
        checkpoint(self.pg)
        m = run_measured(
            [str(self.bin), "run", str(pipeline), *flags], self.log_dir / f"{tag}.log", cwd=self.workdir
        )
        line = (
            f"  {row.key:28s} {tag:22s} {m.seconds:7.2f} s, "
            f"peak RSS {m.max_rss_mb or 0:5.0f} MB (tree {m.tree_rss_mb:.0f} MB)"
        )
        error, where = "", ""
        if m.rc != 0:
            error = f"exit status {m.rc} (log: {m.log})"
        else:
            error, where = check_destination(self.pg, schema, self.rows, self.ids_sql, full=full_check)
            s = parse_openfuse_summary(m.log, SRC_TABLE)
            if (
                not error
                and expect_written is not None
                and s is not None
                and s.rows_written != expect_written
            ):
                error = f"openfuse wrote {s.rows_written:,} rows, expected {expect_written:,}"
            if error:
                error += f" (log: {m.log})"
        if error:
            row.error = row.error or error
            self.failed = True
            print(f"{line}  FAILED: {error}\n" + indent(tail(m.log)), flush=True)
            return False
        row.add(m)
        extra = f", engine {row.engine[-1]:.2f} s" if row.engine else ""
        rw = f", read {row.rows_read:,} / wrote {row.rows_written:,}" if row.rows_read is not None else ""
        print(f"{line}{extra}{rw}  ok{' (full checksum)' if full_check else ''}", flush=True)
        # Settle (untimed), as in pg_to_pg.py: autovacuum should not pick the table up mid-run.
        self.pg.query(DST_DB, f"VACUUM (ANALYZE) {where}")
        return True


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rerun: python bench/pg_incremental.py",
    )
    ap.add_argument("--rows", type=int, default=1_000_000, help="source table rows (default 1,000,000)")
    ap.add_argument("--updates", type=int, default=10_000, help="rows updated per repeat (default 10,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measured row (default 3)")
    ap.add_argument(
        "--index",
        choices=["without", "with", "both"],
        default="both",
        help="measure without and/or with an index on updated_at (default both)",
    )
    ap.add_argument("--no-baselines", action="store_true", help="skip the two full-refresh rows")
    ap.add_argument(
        "--min-idle",
        type=float,
        default=0.5,
        help="before each timed run, wait until the CPUs are at least this idle over 1 s "
        "(0..1, default 0.5; 0 = do not wait): other work on a shared host is noise",
    )
    ap.add_argument(
        "--idle-timeout", type=float, default=60, help="wait at most this many seconds (default 60)"
    )
    ap.add_argument("--regen", action="store_true", help="rebuild the source table")
    ap.add_argument("--no-results", action="store_true", help=f"do not write {RESULTS_MD.name}")
    ap.add_argument(
        "--openfuse",
        type=Path,
        default=OPENFUSE_BIN,
        help="openfuse executable (default: <repo>/.venv/bin/openfuse)",
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="postgres")
    args = ap.parse_args()
    if args.rows < 1 or args.repeat < 1 or not 1 <= args.updates <= args.rows:
        ap.error("--rows and --repeat must be positive, 1 <= --updates <= --rows")
    if not args.openfuse.exists():
        sys.exit(f"{args.openfuse} not found")
    require_tools()
    pg = PG(args.host, args.port, args.user)
    load_start = load_average()
    print(f"load average (1/5/15 min) at start: {load_start}")
    ensure_databases(pg)
    ensure_source_table(pg, args.rows, args.regen)
    n = restore_source(pg)
    if n:
        print(f"source: put {n:,} rows left updated by an earlier run back to their generated values")

    pre_existing = updated_at_indexes(pg)
    phases = ["without", "with"] if args.index == "both" else [args.index]
    if pre_existing and "without" in phases:
        print(
            f"source already has an index on updated_at ({', '.join(pre_existing)}): "
            "the 'without index' case is skipped"
        )
        phases = ["with"]

    u = f"{args.updates:,}"
    rows: dict[str, Row] = {}
    for ph in ("without", "with"):
        idx = "no index on updated_at" if ph == "without" else "index on updated_at"
        rows[f"incr_{ph}"] = Row(f"incr_{ph}", f"incremental_dedupe after {u} updated rows, {idx}")
        rows[f"nothing_{ph}"] = Row(f"nothing_{ph}", f"incremental_dedupe, nothing new, {idx}")
        if ph not in phases:
            rows[f"incr_{ph}"].skipped = rows[f"nothing_{ph}"].skipped = (
                "index already present" if pre_existing else "not selected (--index)"
            )
    rows["full"] = Row("full", "full refresh, pass-through (`full_refresh_overwrite`, `--full-refresh`)")
    rows["reload"] = Row(
        "reload", "`--full-refresh` of an incremental_dedupe stream (Arrow path, primary key)"
    )
    if args.no_baselines:
        rows["full"].skipped = rows["reload"].skipped = "--no-baselines"
    setup = Row("initial", "initial incremental_dedupe load (no state yet; untimed setup, 1 run)")

    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"pg_incremental-{run_id}"
    notes: list[str] = []
    created_index = False
    with tempfile.TemporaryDirectory(prefix="openfuse_bench_") as tmp:
        b = Bench(pg, args.openfuse, Path(tmp), log_dir, args.rows, args.updates)
        b.min_idle, b.idle_timeout = args.min_idle, args.idle_timeout
        try:
            warm_source_cache(pg)
            print(f"logs in {log_dir.relative_to(REPO_DIR)}/")
            print(
                f"setup: initial load of {SRC_DB}.{SRC_TABLE} into {DST_DB}.{SCHEMA_INCR} (incremental_dedupe)"
            )
            reset_schema(pg, SCHEMA_INCR)
            b.run(setup, b.incr, "initial", full_check=True)
            # Baselines first, while the source is as generated (no dead or moved rows yet).
            if not args.no_baselines and not b.failed:
                for rep in range(1, args.repeat + 1):
                    reset_schema(pg, SCHEMA_FULL)
                    b.run(rows["full"], b.full, f"full.{rep}", "--full-refresh", schema=SCHEMA_FULL)
                    reset_schema(pg, SCHEMA_RELOAD)
                    b.run(rows["reload"], b.reload, f"reload.{rep}", "--full-refresh", schema=SCHEMA_RELOAD)
                reset_schema(pg, SCHEMA_FULL)  # 2 x ~250 MB not needed any more
                reset_schema(pg, SCHEMA_RELOAD)
            # Later than every existing value; one hour more per repeat.
            base = pg.query(SRC_DB, f"SELECT max(updated_at)::text FROM {SRC_TABLE}")
            k = 0
            # Round-robin over the phases (as pg_to_pg.py does over contenders), so that load from
            # other work on the machine hits the unindexed and the indexed case alike: the index
            # is created before each indexed round and dropped before each unindexed one.
            index_seconds: list[float] = []
            for rep in range(1, args.repeat + 1) if not b.failed else []:
                for ph in phases:
                    if not pre_existing:
                        t0 = time.perf_counter()
                        if ph == "with":
                            pg.query(SRC_DB, f"CREATE INDEX {INDEX_NAME} ON {SRC_TABLE} (updated_at)")
                            pg.query(SRC_DB, f"ANALYZE {SRC_TABLE}")
                            created_index = True
                            index_seconds.append(time.perf_counter() - t0)
                        elif created_index:
                            pg.query(SRC_DB, f"DROP INDEX {INDEX_SCHEMA}.{INDEX_NAME}")
                            created_index = False
                    k += 1
                    update_rows(pg, b.ids_sql, f"'{base}'::timestamptz + interval '{k} hours'")
                    last = rep == args.repeat
                    if not b.run(
                        rows[f"incr_{ph}"],
                        b.incr,
                        f"incr_{ph}.{rep}",
                        expect_written=args.updates,
                        full_check=last,
                    ):
                        break
                    if not b.run(rows[f"nothing_{ph}"], b.incr, f"nothing_{ph}.{rep}", expect_written=0):
                        break
                if b.failed:
                    break
            if index_seconds:
                notes.append(
                    f"`CREATE INDEX {INDEX_NAME} ON {SRC_TABLE} (updated_at)` + ANALYZE took "
                    f"{statistics.median(index_seconds):.1f} s (untimed; the index is created before each "
                    "indexed round and dropped before each unindexed one, so the two cases alternate; "
                    "it is dropped at the end)"
                )
        finally:
            if created_index:
                pg.query(SRC_DB, f"DROP INDEX IF EXISTS {INDEX_SCHEMA}.{INDEX_NAME}")
            n = restore_source(pg)
            print(f"source restored ({n:,} rows put back to their generated values, CLUSTER, VACUUM FREEZE)")

    table = [
        setup,
        *(
            rows[k]
            for k in ("incr_without", "nothing_without", "incr_with", "nothing_with", "full", "reload")
        ),
    ]
    header, body = table_rows(table)
    print_table(
        header, body, f"incremental_dedupe, {args.rows:,} rows, {u} updated (median of {args.repeat})"
    )
    tgt = targets(rows, args.updates)
    for what, target, value, verdict in tgt:
        print(f"  target {what:45s} {target:8s} {value:>8s}  {verdict}")
    if b.idle:
        busy = sum(1 for x in b.idle if x < args.min_idle)
        notes.append(
            f"shared host: before each timed run the script waited until the CPUs were ≥ {args.min_idle:.0%} "
            f"idle over one second (at most {args.idle_timeout:.0f} s); idle then: median "
            f"{statistics.median(b.idle):.0%}, lowest {min(b.idle):.0%}; waited {sum(b.waited):.0f} s in all; "
            f"{busy} of {len(b.idle)} runs started on a busier machine after the time-out"
        )
        print(notes[-1])
    if not args.no_results:
        info = machine_info(pg)
        info["load"] = f"{load_start} at start, {load_average()} at the end"
        section = results_section(
            args, info, table, tgt, pre_existing, notes, openfuse_version(args.openfuse)
        )
        write_results(RESULTS_MD, section)
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if b.failed else 0


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def table_rows(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    header = [
        "run",
        "status",
        "runs",
        "median s",
        "min s",
        "max s",
        "engine s",
        "CPU s",
        "rows read",
        "rows written",
        "peak RSS MB",
        "tree RSS MB",
    ]
    out = []
    for r in rows:
        ok = r.median is not None
        status = (
            "skipped: " + r.skipped if r.skipped else "FAILED" if r.error else "ok" if r.times else "not run"
        )
        out.append(
            [
                r.label,
                status,
                str(len(r.times)),
                fmt(r.median),
                fmt(min(r.times) if ok else None),
                fmt(max(r.times) if ok else None),
                fmt(statistics.median(r.engine) if ok and r.engine else None),
                fmt(statistics.median(r.cpu) if ok and r.cpu else None),
                fmt(r.rows_read, ",d") if r.rows_read is not None and ok else "–",
                fmt(r.rows_written, ",d") if r.rows_written is not None and ok else "–",
                fmt(max(r.max_rss) if ok else None, ".0f"),
                fmt(max(r.tree_rss) if ok else None, ".0f"),
            ]
        )
    return header, out


def targets(rows: dict[str, Row], updates: int) -> list[list[str]]:
    out = []
    for ph, idx in (("without", "no index"), ("with", "index on updated_at")):
        r = rows[f"incr_{ph}"]
        if r.skipped:
            continue
        m = r.median
        what = f"incremental_dedupe after {updates:,} updates, {idx}"
        target = f"≤ {TARGET_INCREMENTAL_S:g} s"
        out.append(
            [
                what,
                target,
                "–" if m is None else f"{m:.2f} s",
                "n/a" if m is None else "met" if m <= TARGET_INCREMENTAL_S else "NOT met",
            ]
        )
    return out


def results_section(
    args: argparse.Namespace,
    info: dict,
    table: list[Row],
    tgt: list[list[str]],
    pre_existing: list[str],
    notes: list[str],
    version: str,
) -> str:
    header, body = table_rows(table)
    failures = [f"- **{r.label} FAILED**: {r.error}" for r in table if r.error]
    idx_note = (
        f"the source had an index on updated_at before the run ({', '.join(pre_existing)})"
        if pre_existing
        else "the generated source table has no index on `updated_at` (only the primary key on `id`); "
        f"the 'index' rows ran after `CREATE INDEX {INDEX_NAME} ON {SRC_TABLE} (updated_at)`"
    )
    parts = [
        f"## PostgreSQL → PostgreSQL, incremental_dedupe after {args.updates:,} updated rows, {args.rows:,} rows",
        "",
        f"- date: {info['date']} (repository commit {info['commit']})",
        f"- machine: {info['machine']}; load average (1/5/15 min) {info['load']}",
        f"- PostgreSQL {info['postgres']} (source and destination databases on the same server, 127.0.0.1; "
        f"{info['pg_settings']})",
        f"- OpenFuse: {version or '?'} (`.venv/bin/openfuse run PIPELINE.yaml`, a fresh process per run)",
        f"- source `{SRC_TABLE}`, {args.rows:,} rows (generator of `pg_to_pg.py`); stream mode "
        "`incremental_dedupe`, `cursor_field: updated_at`, `primary_key: [id]`, into "
        f"`{SCHEMA_INCR}.bench_orders` (created with a primary key by the initial load)",
        f"- before each timed incremental run (untimed): one `UPDATE … SET qty = qty + 1, updated_at = "
        f"<max + k hours> WHERE id IN (<{args.updates:,} ids, every {args.rows // args.updates}th>)`, "
        "then CHECKPOINT; all updated rows share one timestamp (one transaction); the “nothing new” run "
        "follows directly with no change in between",
        f"- {idx_note}",
        *[f"- {n}" for n in notes],
        f"- {args.repeat} runs per row, median reported; after every run (untimed) the destination must hold "
        f"exactly {args.rows:,} rows and match the source in sum(qty), max(updated_at) and a checksum of "
        "the updated rows; after the initial load and the last update run of each case also a checksum of "
        "every row and column; then `VACUUM (ANALYZE)` of the destination table",
        "- the cursor is inclusive (`updated_at >= <last cursor>`), so every run reads again the rows at the "
        "last cursor value — after an update run, all the updated rows — and drops those already loaded by a "
        "digest of their key: that is the “rows read” of the “nothing new” rows",
        "- the source is put back afterwards (generated qty/updated_at, CLUSTER on the primary key, VACUUM FREEZE), so `pg_to_pg.py` "
        "keeps reading the same data",
        "- median s = wall time of the `openfuse run` process (interpreter start-up and imports included); "
        "engine s = the stream's seconds as `openfuse run` reports them (extract + load + commit); "
        "CPU s = user + system CPU seconds of the `openfuse run` process (median; `time -v`; the "
        "server's work is not in it, and it is less sensitive than wall time to other work on the host); "
        "rows read / written as reported by `openfuse run` (last run); peak RSS = largest single "
        "process (`/usr/bin/time -v`), tree RSS = sampled peak of the process tree's summed RSS",
        "",
        md_table(header, body),
        "",
    ]
    if failures:
        parts += [*failures, ""]
    parts += [
        "Targets (reported, not asserted):",
        "",
        md_table(["run", "target", "measured", "result"], tgt),
        "",
        f"Rerun: `python bench/pg_incremental.py --rows {args.rows} --updates {args.updates} --repeat {args.repeat}`",
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
