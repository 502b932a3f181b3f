#!/usr/bin/env python3
"""Peak RSS of an OpenFuse PostgreSQL -> PostgreSQL full refresh at 1M and 5M rows: does memory stay flat?

Rerun (from the repository root; needs python3, psql, GNU time and a PostgreSQL server):

    python bench/pg_rss_scaling.py

Options worth knowing:
    --sizes 1000000,5000000   table sizes (default). 1,000,000 rows is public.bench_orders, shared
                              with pg_to_pg.py; any other size N has its own table
                              public.bench_orders_<N> (e.g. bench_orders_5m), so the 1M table stays
                              intact. Same generator (common.py); built once, then reused
    --repeat K                runs per variant at sizes up to 1M rows (default 3)
    --repeat-large K          runs per variant at larger sizes (default 1: a 5M run takes a while)
    --drop-large              drop the larger source tables at the end (5M rows ~ 1.1 GB)
    --no-results              do not touch bench/RESULTS.md

Variants: `openfuse` (`openfuse run PIPELINE --full-refresh`, default COPY pass-through) and
`openfuse_arrow` (the same pipeline with `passthrough: false` on the stream: the decoded Arrow
path). Both load into schema bench_rss of openfuse_bench_dst, which is dropped before every run
(untimed, then CHECKPOINT) and at the end. Each run is a subprocess under /usr/bin/time -v as in
pg_to_pg.py: peak RSS is the kernel's high-water mark of the largest process of the tree; tree RSS
is sampled from /proc every 50 ms, and the samples at 1/4, 1/2 and 3/4 of the run show whether
memory creeps up during the run. After each run the destination must hold exactly N rows.

Targets, reported and never asserted: peak RSS <= 200 MB at every size, and peak RSS at the largest
size no higher than at the smallest (a tolerance of 5% is allowed for allocator noise; the
difference is printed). The section "## OpenFuse peak RSS vs table size, PostgreSQL →
PostgreSQL full refresh" of bench/RESULTS.md is replaced.
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
    LOG_DIR,
    OPENFUSE_BIN,
    PG,
    REPO_DIR,
    RESULTS_MD,
    SRC_DB,
    SRC_TABLE,
    TARGET_RSS_MB,
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
    warm_source_cache,
    write_pipeline,
    write_results,
)

SCHEMA = "bench_rss"
VARIANTS = {
    "openfuse": "COPY pass-through (default)",
    "openfuse_arrow": "stream `passthrough: false` (decoded Arrow path)",
}
FLAT_TOLERANCE = 0.05  # peak RSS at the largest size may exceed the smallest's by this fraction


def table_for(rows: int) -> str:
    if rows == 1_000_000:
        return SRC_TABLE
    label = (
        f"{rows // 1_000_000}m"
        if rows % 1_000_000 == 0
        else f"{rows // 1_000}k"
        if rows % 1_000 == 0
        else str(rows)
    )
    return f"{SRC_TABLE}_{label}"


@dataclass
class Cell:
    variant: str
    rows: int
    runs: list[Measurement] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.error

    @property
    def median(self) -> float | None:
        return statistics.median(m.seconds for m in self.runs) if self.ok else None

    @property
    def peak_rss(self) -> float | None:
        return max(m.max_rss_mb or 0.0 for m in self.runs) if self.ok else None

    @property
    def tree_rss(self) -> float | None:
        return max(m.tree_rss_mb for m in self.runs) if self.ok else None

    def rss_at(self, fraction: float) -> float | None:
        """Tree RSS at `fraction` of the run, of the run with the highest peak."""
        if not self.ok:
            return None
        return max(self.runs, key=lambda m: m.max_rss_mb or 0.0).tree_rss_at(fraction)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rerun: python bench/pg_rss_scaling.py",
    )
    ap.add_argument("--sizes", default="1000000,5000000", help="comma-separated row counts")
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant up to 1M rows (default 3)")
    ap.add_argument("--repeat-large", type=int, default=1, help="runs per variant above 1M rows (default 1)")
    ap.add_argument("--only", default=",".join(VARIANTS), help="variants (default: openfuse,openfuse_arrow)")
    ap.add_argument("--regen", action="store_true", help="rebuild the source tables")
    ap.add_argument(
        "--drop-large", action="store_true", help="drop the source tables other than the 1M one at the end"
    )
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
    sizes = sorted({int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()})
    variants = [v.strip() for v in args.only.split(",") if v.strip()]
    if not sizes or min(sizes) < 1 or args.repeat < 1 or args.repeat_large < 1:
        ap.error("--sizes, --repeat and --repeat-large must be positive")
    if set(variants) - set(VARIANTS):
        ap.error(f"unknown variant(s); choose from {', '.join(VARIANTS)}")
    if not args.openfuse.exists():
        sys.exit(f"{args.openfuse} not found")
    require_tools()
    pg = PG(args.host, args.port, args.user)
    load_start = load_average()
    print(f"load average (1/5/15 min) at start: {load_start}")
    ensure_databases(pg)
    for n in sizes:
        ensure_source_table(pg, n, args.regen, table_for(n))

    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"pg_rss_scaling-{run_id}"
    print(f"logs in {log_dir.relative_to(REPO_DIR)}/")
    cells: list[Cell] = []
    sizes_info: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="openfuse_bench_") as tmp:
        workdir = Path(tmp)
        for n in sizes:
            table = table_for(n)
            sizes_info[n] = pg.query(SRC_DB, f"SELECT pg_size_pretty(pg_table_size('{table}'))")
            warm_source_cache(pg, table)  # only fits the cache partly at 5M; same for every variant
            repeat = args.repeat if n <= 1_000_000 else args.repeat_large
            row_cells = [Cell(v, n) for v in variants]
            cells += row_cells
            for rep in range(1, repeat + 1):
                for c in row_cells:  # round-robin
                    if c.error:
                        continue
                    extra = () if c.variant == "openfuse" else ("passthrough: false",)
                    pipeline = write_pipeline(
                        workdir / f"{c.variant}_{n}.yaml",
                        pg,
                        "bench_rss_scaling",
                        SCHEMA,
                        table,
                        "full_refresh_overwrite",
                        *extra,
                    )
                    reset_schema(pg, SCHEMA)
                    checkpoint(pg)
                    m = run_measured(
                        [str(args.openfuse), "run", str(pipeline), "--full-refresh"],
                        log_dir / f"{c.variant}.{n}.{rep}.log",
                        cwd=workdir,
                    )
                    count, where = dst_row_count(pg, SCHEMA, table.split(".", 1)[1])
                    line = (
                        f"  {c.variant:15s} {n:>10,} rows run {rep}/{repeat}: {m.seconds:7.2f} s, "
                        f"peak RSS {m.max_rss_mb or 0:5.0f} MB (tree {m.tree_rss_mb:.0f} MB)"
                    )
                    if m.rc != 0:
                        c.error = f"exit status {m.rc} (log: {m.log})"
                    elif count != n:
                        c.error = f"row count {count if count is not None else '-'} != {n:,} ({where}; log: {m.log})"
                    if c.error:
                        print(f"{line}  FAILED: {c.error}\n" + indent(tail(m.log)), flush=True)
                        continue
                    c.runs.append(m)
                    s = parse_openfuse_summary(m.log, table)
                    if s is not None:
                        c.engine.append(s.seconds)
                    print(f"{line}  rows ok", flush=True)
        reset_schema(pg, SCHEMA)
    if args.drop_large:
        for n in sizes:
            if table_for(n) != SRC_TABLE:
                pg.query(SRC_DB, f"DROP TABLE IF EXISTS {table_for(n)}")
                print(f"dropped {table_for(n)}")

    header, body = table_rows(cells, sizes_info)
    print_table(header, body, "OpenFuse full refresh: peak RSS vs table size")
    tgt = targets(cells, sizes, variants)
    for variant, target, value, verdict in tgt:
        print(f"  target {variant:15s} {target:40s} {value:>22s}  {verdict}")
    if not args.no_results:
        info = machine_info(pg)
        info["load"] = f"{load_start} at start, {load_average()} at the end"
        write_results(
            RESULTS_MD,
            results_section(args, sizes, sizes_info, info, cells, tgt, openfuse_version(args.openfuse)),
        )
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if any(c.error for c in cells) else 0


def table_rows(cells: list[Cell], sizes_info: dict[int, str]) -> tuple[list[str], list[list[str]]]:
    header = [
        "variant",
        "rows",
        "source table",
        "status",
        "runs",
        "median s",
        "engine s",
        "rows/s",
        "peak RSS MB",
        "tree RSS MB",
        "tree RSS at ¼ / ½ / ¾ of the run, MB",
    ]
    out = []
    for c in cells:
        med = c.median
        at = [c.rss_at(f) for f in (0.25, 0.5, 0.75)]
        out.append(
            [
                c.variant,
                f"{c.rows:,}",
                f"`{table_for(c.rows)}` ({sizes_info.get(c.rows, '?')})",
                "FAILED" if c.error else "ok" if c.runs else "not run",
                str(len(c.runs)),
                fmt(med),
                fmt(statistics.median(c.engine) if c.ok and c.engine else None),
                fmt(c.rows / med if med else None, ",.0f"),
                fmt(c.peak_rss, ".0f"),
                fmt(c.tree_rss, ".0f"),
                " / ".join(fmt(x, ".0f") for x in at) if c.ok else "–",
            ]
        )
    return header, out


def targets(cells: list[Cell], sizes: list[int], variants: list[str]) -> list[list[str]]:
    by = {(c.variant, c.rows): c for c in cells}
    out = []
    for v in variants:
        for n in sizes:
            rss = by[(v, n)].peak_rss
            out.append(
                [
                    v,
                    f"peak RSS ≤ {TARGET_RSS_MB:g} MB at {n:,} rows",
                    fmt(rss, ".0f") + (" MB" if rss is not None else ""),
                    "n/a" if rss is None else "met" if rss <= TARGET_RSS_MB else "NOT met",
                ]
            )
        if len(sizes) > 1:
            lo, hi = by[(v, sizes[0])].peak_rss, by[(v, sizes[-1])].peak_rss
            what = f"peak RSS at {sizes[-1]:,} ≤ at {sizes[0]:,} (+{FLAT_TOLERANCE:.0%})"
            if lo is None or hi is None:
                out.append([v, what, "–", "n/a"])
            else:
                out.append(
                    [
                        v,
                        what,
                        f"{hi:.0f} vs {lo:.0f} MB ({hi - lo:+.0f} MB)",
                        "met" if hi <= lo * (1 + FLAT_TOLERANCE) else "NOT met",
                    ]
                )
    return out


def results_section(
    args: argparse.Namespace,
    sizes: list[int],
    sizes_info: dict[int, str],
    info: dict,
    cells: list[Cell],
    tgt: list[list[str]],
    version: str,
) -> str:
    header, body = table_rows(cells, sizes_info)
    failures = [f"- **{c.variant} at {c.rows:,} rows FAILED**: {c.error}" for c in cells if c.error]
    runs = ", ".join(
        f"{n:,} rows: {args.repeat if n <= 1_000_000 else args.repeat_large} run(s)" for n in sizes
    )
    parts = [
        "## OpenFuse peak RSS vs table size, PostgreSQL → PostgreSQL full refresh",
        "",
        f"- date: {info['date']} (repository commit {info['commit']})",
        f"- machine: {info['machine']}; load average (1/5/15 min) {info['load']}",
        f"- PostgreSQL {info['postgres']} (source and destination databases on the same server, 127.0.0.1; "
        f"{info['pg_settings']})",
        f"- OpenFuse: {version or '?'}; `openfuse run PIPELINE.yaml --full-refresh`, stream mode "
        "`full_refresh_overwrite`, into a freshly dropped schema `bench_rss`",
        "- variants: "
        + "; ".join(f"`{v}`: {VARIANTS[v]}" for v in VARIANTS if any(c.variant == v for c in cells)),
        f"- source tables: the `pg_to_pg.py` generator (~150 bytes/row); runs per variant: {runs} "
        "(only one at the larger size: it is slow to run, and peak RSS barely varies between runs); "
        "median s reported",
        "- peak RSS = largest single process of the run's process tree (`/usr/bin/time -v`, kernel "
        "high-water mark; the highest of the runs); tree RSS = sampled (50 ms) peak of the summed RSS "
        "of all its processes (the pass-through's `psql` COPY reader included); the ¼ / ½ / ¾ "
        "columns are tree RSS samples at those points of the run's wall time",
        "",
        md_table(header, body),
        "",
    ]
    if failures:
        parts += [*failures, ""]
    parts += [
        "Targets (reported, not asserted):",
        "",
        md_table(["variant", "target", "measured", "result"], tgt),
        "",
        f"Rerun: `python bench/pg_rss_scaling.py --sizes {','.join(str(n) for n in sizes)} "
        f"--repeat {args.repeat} --repeat-large {args.repeat_large}`",
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
