#!/usr/bin/env python3
"""What row transforms cost: the 1M-row PostgreSQL -> PostgreSQL full refresh with and without them.

Rerun (from the repository root; needs python3, psql, GNU time, a PostgreSQL server and OpenFuse
in <repo>/.venv):

    python bench/transform_overhead.py

Options worth knowing:
    --rows N            table size (default 1,000,000; public.bench_orders, shared with pg_to_pg.py)
    --repeat K          runs per variant, the median is reported (default 3)
    --only a,b          variants to run (default: arrow, hash_filter, passthrough; also: hash, filter)
    --no-results        do not touch bench/RESULTS.md
    --min-idle F        before each run wait (at most --idle-timeout s, default 30) until the CPUs
                        are at least F idle over one second (default 0.5; 0 disables): the host
                        may be shared, and the section records how idle it was

Variants, one pipeline each, all `openfuse run PIPELINE --full-refresh` (full_refresh_overwrite)
of public.bench_orders into schema `bench_transforms` of openfuse_bench_dst:
    arrow        `passthrough: false`, no transforms: the decoded Arrow path (the baseline)
    hash_filter  `passthrough: false` + `hash` of `name` (salted SHA-256, hex) + `filter`
                 `qty >= 0` (keeps every row)
    passthrough  the default COPY pass-through, for reference
    hash, filter one transform alone (not run unless named in --only): where the cost is

Each run is a fresh subprocess under `/usr/bin/time -v` (common.py's runner), round-robin; the
destination schema is dropped and checkpointed before every run (untimed), and after every run
the destination must hold exactly N rows (and, when `name` is hashed, 64-hex-character names).
Reports wall and engine seconds (the stream's time in `openfuse run`'s summary, no start-up),
peak RSS, and the ratio hash_filter / arrow. Target (reported, never asserted): <= 1.5x. Writes
the section "## Transform overhead, PostgreSQL → PostgreSQL, N rows" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    DST_DB,
    LOG_DIR,
    OPENFUSE_BIN,
    PG,
    REPO_DIR,
    RESULTS_MD,
    SRC_DB,
    SRC_TABLE,
    TARGET_RSS_MB,
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

SCHEMA = "bench_transforms"
TARGET_RATIO = 1.5  # hash_filter / arrow (reported, never asserted)
# The salt is read from the environment, as a pipeline should; the default is not a secret.
SALT = "${OPENFUSE_BENCH_SALT:-bench-salt-not-a-secret}"
HASH = f'{{type: hash, columns: [name], salt: "{SALT}"}}'
FILTER = '{type: filter, expr: "qty >= 0"}'
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "arrow": ("`passthrough: false`, no transforms (decoded Arrow path)", ("passthrough: false",)),
    "hash_filter": (
        "`passthrough: false` + `hash` of `name` + `filter` `qty >= 0` (keeps every row)",
        ("passthrough: false", f"transforms: [{HASH}, {FILTER}]"),
    ),
    "passthrough": ("COPY pass-through (the default), for reference", ()),
    "hash": ("`passthrough: false` + `hash` of `name` only", ("passthrough: false", f"transforms: [{HASH}]")),
    "filter": (
        "`passthrough: false` + `filter` `qty >= 0` only",
        ("passthrough: false", f"transforms: [{FILTER}]"),
    ),
}
DEFAULT = ["arrow", "hash_filter", "passthrough"]


@dataclass
class Result:
    variant: str
    times: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    max_rss: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu and not self.error else None

    @property
    def engine_median(self) -> float | None:
        return statistics.median(self.engine) if self.engine and not self.error else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rerun: python bench/transform_overhead.py",
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(DEFAULT), help=f"of {','.join(VARIANTS)}")
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument(
        "--min-idle",
        type=float,
        default=0.5,
        help="before each run wait until the CPUs are this idle over 1 s (default 0.5; 0: do not wait)",
    )
    ap.add_argument("--idle-timeout", type=float, default=30.0, help="longest wait for --min-idle, s")
    ap.add_argument("--openfuse", type=Path, default=OPENFUSE_BIN)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="postgres")
    args = ap.parse_args()

    variants = [v.strip() for v in args.only.split(",") if v.strip()]
    if not variants or set(variants) - set(VARIANTS):
        ap.error(f"choose variants from {', '.join(VARIANTS)}")
    if args.rows < 1 or args.repeat < 1:
        ap.error("--rows and --repeat must be positive")
    if not args.openfuse.exists():
        sys.exit(f"{args.openfuse} not found")
    require_tools()
    pg = PG(args.host, args.port, args.user)
    load_start = load_average()
    print(f"load average (1/5/15 min) at start: {load_start}")
    ensure_databases(pg)
    table = SRC_TABLE if args.rows == 1_000_000 else f"{SRC_TABLE}_{args.rows}"
    ensure_source_table(pg, args.rows, args.regen, table)
    warm_source_cache(pg, table)

    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"transform_overhead-{run_id}"
    print(
        f"variants {', '.join(variants)}: {args.repeat} run(s) each; logs in {log_dir.relative_to(REPO_DIR)}/"
    )
    results = {v: Result(v) for v in variants}
    idles: list[float] = []
    waited_total = 0.0
    with tempfile.TemporaryDirectory(prefix="openfuse_bench_") as tmp:
        workdir = Path(tmp)
        pipelines = {
            v: write_pipeline(
                workdir / f"{v}.yaml",
                pg,
                f"bench_transforms_{v}",
                SCHEMA,
                table,
                "full_refresh_overwrite",
                *VARIANTS[v][1],
            )
            for v in variants
        }
        for rep in range(1, args.repeat + 1):
            for v in variants:
                r = results[v]
                if r.error:
                    continue
                reset_schema(pg, SCHEMA)
                checkpoint(pg)
                if args.min_idle > 0:
                    idle, waited = wait_for_idle(args.min_idle, args.idle_timeout)
                    idles.append(idle)
                    waited_total += waited
                argv = [str(args.openfuse), "run", str(pipelines[v]), "--full-refresh"]
                m = run_measured(argv, log_dir / f"{v}.{rep}.log", cwd=workdir)
                count, where = dst_row_count(pg, SCHEMA, table.split(".")[1])
                line = (
                    (f"  [idle {idles[-1]:.0%}]" if idles else "")
                    + f"  {v:12s} run {rep}/{args.repeat}: {m.seconds:6.2f} s, "
                    f"peak RSS {m.max_rss_mb or 0:4.0f} MB, CPU {m.cpu_seconds or 0:5.2f} s"
                )
                if m.rc != 0:
                    r.error = f"exit status {m.rc} (log: {m.log})"
                elif count != args.rows:
                    r.error = f"row count {count} != {args.rows:,} ({where}; log: {m.log})"
                elif "hash" in v:
                    bad = pg.query(DST_DB, f"SELECT count(*) FROM {where} WHERE name !~ '^[0-9a-f]{{64}}$'")
                    if bad != "0":
                        r.error = f"{bad} names in {where} are not SHA-256 hex: the hash did not run"
                if r.error:
                    print(f"{line}  FAILED: {r.error}\n" + indent(tail(m.log)), flush=True)
                    continue
                summary = parse_openfuse_summary(m.log, table)
                engine = f", engine {summary.seconds:.2f} s" if summary else ""
                print(f"{line}{engine}  rows ok ({where})", flush=True)
                r.times.append(m.seconds)
                r.cpu.append(m.cpu_seconds or 0.0)
                r.max_rss.append(m.max_rss_mb or 0.0)
                if summary:
                    r.engine.append(summary.seconds)
                pg.query(DST_DB, f"VACUUM (ANALYZE) {where}")  # untimed: keep autovacuum out of the next run
    reset_schema(pg, SCHEMA)
    load_end = load_average()
    print(f"load average (1/5/15 min) at the end: {load_end}")

    base = results.get("arrow")
    header = [
        "variant",
        "status",
        "median s",
        "min s",
        "max s",
        "engine s",
        "CPU s",
        "rows/s",
        "peak RSS MB",
        "× arrow (wall)",
        "× arrow (engine)",
        "× arrow (CPU)",
    ]
    rows = []
    for v in variants:
        r = results[v]
        med = r.median
        ok = med is not None
        rows.append(
            [
                v,
                "FAILED" if r.error else "ok" if r.times else "not run",
                fmt(med),
                fmt(min(r.times) if ok else None),
                fmt(max(r.times) if ok else None),
                fmt(r.engine_median),
                fmt(r.cpu_median),
                fmt(args.rows / med if ok else None, ",.0f"),
                fmt(max(r.max_rss) if ok else None, ".0f"),
                fmt(ratio(med, base.median if base else None)),
                fmt(ratio(r.engine_median, base.engine_median if base else None)),
                fmt(ratio(r.cpu_median, base.cpu_median if base else None)),
            ]
        )
    print_table(header, rows, f"Transform overhead, {args.rows:,} rows (median of {args.repeat})")
    checks = []
    hf = results.get("hash_filter")
    if hf and base:
        for what, value in (
            ("wall", ratio(hf.median, base.median)),
            ("engine", ratio(hf.engine_median, base.engine_median)),
            ("CPU", ratio(hf.cpu_median, base.cpu_median)),
        ):
            verdict = "n/a" if value is None else "met" if value <= TARGET_RATIO else "NOT met"
            checks.append(
                ["hash_filter", f"≤ {TARGET_RATIO:g}× arrow ({what} time)", fmt(value) + "×", verdict]
            )
        rss = max(hf.max_rss) if hf.median else None
        checks.append(
            [
                "hash_filter",
                f"peak RSS ≤ {TARGET_RSS_MB:g} MB",
                fmt(rss, ".0f") + " MB",
                "n/a" if rss is None else "met" if rss <= TARGET_RSS_MB else "NOT met",
            ]
        )
    for c in checks:
        print(f"  target {c[0]:12s} {c[1]:32s} {c[2]:>8s}  {c[3]}")

    if not args.no_results:
        info = machine_info(pg)
        size = pg.query(SRC_DB, f"SELECT pg_size_pretty(pg_table_size('{table}'))")
        parts = [
            f"## Transform overhead, PostgreSQL → PostgreSQL, {args.rows:,} rows",
            "",
            f"- date: {info['date']} (repository commit {info['commit']})",
            f"- machine: {info['machine']}; load average (1/5/15 min) {load_start} at start, {load_end} at "
            "the end; the host is shared, other work on it is noise",
            f"- PostgreSQL {info['postgres']}; `{table}` ({size}) → schema `{SCHEMA}`, full_refresh_overwrite; "
            f"{openfuse_version(args.openfuse)}",
            f"- {args.repeat} runs per variant, round-robin, each a fresh `openfuse run` process; median "
            "reported; `engine s` is the stream's time in `openfuse run`'s summary (no start-up, imports); "
            "`CPU s` is the user + system time of the `openfuse` process (`time -v`; PostgreSQL's work is not "
            "in it), the least sensitive to other work on the machine",
            (
                f"- before each run the script waited (at most {args.idle_timeout:g} s) until the CPUs were "
                f"≥ {args.min_idle:.0%} idle over 1 s: idle before the runs {min(idles):.0%}–{max(idles):.0%} "
                f"(median {statistics.median(idles):.0%}), {waited_total:.0f} s waited in all"
                if idles
                else "- no wait for an idle machine (`--min-idle 0`)"
            ),
            "- variants:",
            *[f"  - `{v}`: {VARIANTS[v][0]}" for v in variants],
            "",
            md_table(header, rows),
            "",
            *[f"- **{v} FAILED**: {results[v].error}" for v in variants if results[v].error],
            "Targets (reported, not asserted):",
            "",
            md_table(["variant", "target", "measured", "result"], checks),
            "",
            f"Rerun: `python bench/transform_overhead.py --rows {args.rows}`",
            "",
        ]
        write_results(RESULTS_MD, "\n".join(parts))
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if any(r.error for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
