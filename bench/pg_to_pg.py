#!/usr/bin/env python3
"""PostgreSQL -> PostgreSQL full-refresh benchmark: OpenFuse against raw COPY, Sling and dlt.

Rerun (from the repository root; needs only python3, psql and a PostgreSQL server):

    python bench/pg_to_pg.py --rows 1000000

Options worth knowing:
    --rows N            table size (default 1,000,000; the source table is reused if it has N rows)
    --regen             rebuild the source table even if it already has N rows
    --repeat K          runs per contender, the median is reported (default 3)
    --only raw,sling    run only these contenders (raw, openfuse, openfuse_arrow, sling, dlt)
    --no-results        do not touch bench/RESULTS.md

What it does:
  1. Creates the databases openfuse_bench_src / openfuse_bench_dst if missing and builds
     public.bench_orders (about 150 bytes a row in COPY text form) server-side with generate_series.
  2. Runs every contender --repeat times, round-robin, each as a subprocess under
     `/usr/bin/time -v`, and records the wall time and the peak RSS. "Peak RSS" is the largest
     single process of the contender's process tree (the kernel's high-water mark, which
     `time -v` reports for the child and everything it waited for: for the raw pipe, the larger of
     the two psql processes). A /proc sampler (every 50 ms) also records the peak of the *summed*
     RSS of the whole tree, shown as "tree RSS".
  3. Before each run (untimed) the contender's destination is reset: the raw table is truncated,
     the other contenders' destination schemas are dropped, and the destination is checkpointed.
     After each run the destination row count must equal N, otherwise the contender is reported
     as FAILED; the loaded table is then VACUUM ANALYZEd (untimed) so autovacuum does not
     compete with the next run.
  4. Prints a table and replaces the section "## PostgreSQL → PostgreSQL, full refresh, N rows"
     of bench/RESULTS.md (other sections are kept).

Shared helpers (psql, the table generator, the measured runner, RESULTS.md writer) are in
bench/common.py, also used by pg_incremental.py and pg_rss_scaling.py.

Baselines (Sling, dlt + ConnectorX) live in bench/.venv-baselines, created on first use from
bench/requirements-baselines.txt; they are never installed into the project's .venv.
OpenFuse is run as `<repo>/.venv/bin/openfuse run PIPELINE.yaml --full-refresh`; if that
executable does not exist the row says "not available".

The script reports the targets (OpenFuse <= 1.5x raw, >= 4x faster than Sling, >= 8x faster
than dlt, peak RSS <= 200 MB) but asserts nothing about timings. Exit status: 0 unless a
contender that ran failed (non-zero exit or wrong row count).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BENCH_DIR,
    COLUMNS_DDL,
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
    machine_info,
    md_table,
    openfuse_version,
    print_table,
    require_tools,
    reset_schema,
    run_measured,
    tail,
    warm_source_cache,
    write_pipeline,
    write_results,
)

BASELINES_VENV = BENCH_DIR / ".venv-baselines"
BASELINES_REQUIREMENTS = BENCH_DIR / "requirements-baselines.txt"
DLT_SCRIPT = BENCH_DIR / "baselines" / "dlt_pg.py"

CONTENDERS = ["raw", "openfuse", "openfuse_arrow", "sling", "dlt"]

# Targets reported (never asserted) in the results.
TARGET_VS_RAW = 1.5  # OpenFuse wall time <= 1.5x raw COPY pipe
TARGET_VS_SLING = 4.0  # OpenFuse >= 4x faster than Sling
TARGET_VS_DLT = 8.0  # OpenFuse >= 8x faster than dlt
# TARGET_RSS_MB (OpenFuse peak RSS) comes from common.py, shared with pg_rss_scaling.py.


# --------------------------------------------------------------------------------------------
# Baseline virtualenv (Sling, dlt, ConnectorX): bench/.venv-baselines
# --------------------------------------------------------------------------------------------


def baselines_python() -> Path:
    """Create/refresh bench/.venv-baselines from requirements-baselines.txt; return its python."""
    py = BASELINES_VENV / "bin" / "python"
    marker = BASELINES_VENV / ".requirements.sha256"
    want = hashlib.sha256(BASELINES_REQUIREMENTS.read_bytes()).hexdigest()
    if py.exists() and marker.exists() and marker.read_text().strip() == want:
        return py
    if not py.exists():
        print(
            f"creating baseline virtualenv {BASELINES_VENV.relative_to(REPO_DIR)} (python3 -m venv)",
            flush=True,
        )
        subprocess.run([sys.executable, "-m", "venv", str(BASELINES_VENV)], check=True)
    print(
        f"installing baselines: pip install -r {BASELINES_REQUIREMENTS.relative_to(REPO_DIR)} "
        "(sling, dlt, connectorx; a few minutes the first time)",
        flush=True,
    )
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(BASELINES_REQUIREMENTS),
        ],
        check=True,
    )
    marker.write_text(want + "\n")
    return py


def sling_binary(py: Path) -> Path | None:
    """The Go binary inside the sling-linux-amd64 wheel (the package exposes it as SLING_BIN)."""
    proc = subprocess.run(
        [str(py), "-c", "import sling_linux_amd64 as s; print(s.SLING_BIN)"], capture_output=True, text=True
    )
    path = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
    return path if path and os.access(path, os.X_OK) else None


def baseline_versions(py: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m\n"
        "for n in ('sling-linux-amd64', 'dlt', 'connectorx', 'pyarrow'):\n"
        "    try: print(n, m.version(n))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


# --------------------------------------------------------------------------------------------
# Contenders. Each one has: destination schema, reset (untimed), and the command to time.
# --------------------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    label: str
    schema: str
    reset: Callable[[], None]
    argv: list[str] | None  # None: not available
    env: dict | None = None
    cwd: Path | None = None
    unavailable: str = ""
    version: str = ""


@dataclass
class Result:
    contender: Contender
    times: list[float] = field(default_factory=list)
    max_rss: list[float] = field(default_factory=list)
    tree_rss: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def status(self) -> str:
        if self.contender.argv is None:
            return "not available"
        if self.error:
            return "FAILED"
        return "ok" if self.times else "not run"

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None


def contender_raw(pg: PG, workdir: Path) -> Contender:
    schema = "bench_raw"

    def reset() -> None:
        # Same columns as the source, no primary key: the floor for moving the bytes (the other
        # tools create their tables without a primary key too).
        pg.script(
            DST_DB,
            f"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE TABLE IF NOT EXISTS {schema}.bench_orders ({COLUMNS_DDL});
            TRUNCATE {schema}.bench_orders;
        """,
        )

    copy_out = f"COPY (SELECT * FROM {SRC_TABLE}) TO STDOUT (FORMAT binary)"
    copy_in = f"COPY {schema}.bench_orders FROM STDIN (FORMAT binary)"
    pipe = (
        f"set -o pipefail; {shlex.join(pg.psql_argv(SRC_DB) + ['-c', copy_out])}"
        f" | {shlex.join(pg.psql_argv(DST_DB) + ['-c', copy_in])}"
    )
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return Contender(
        "raw",
        "psql COPY … TO STDOUT (binary) | psql COPY … FROM STDIN, into an empty table",
        schema,
        reset,
        ["bash", "-c", pipe],
        version=version,
    )


def contender_openfuse(pg: PG, workdir: Path, passthrough: bool, openfuse_bin: Path) -> Contender:
    name = "openfuse" if passthrough else "openfuse_arrow"
    label = (
        "OpenFuse: openfuse run --full-refresh (COPY pass-through)"
        if passthrough
        else "OpenFuse: same pipeline, stream `passthrough: false` (decoded Arrow path)"
    )
    schema = "bench_openfuse"
    extra = () if passthrough else ("passthrough: false",)
    pipeline = write_pipeline(
        workdir / f"{name}.yaml", pg, "bench_pg_to_pg", schema, SRC_TABLE, "full_refresh_overwrite", *extra
    )
    c = Contender(name, label, schema, lambda: reset_schema(pg, schema), None, cwd=workdir)
    if not os.access(openfuse_bin, os.X_OK):
        c.unavailable = f"{openfuse_bin} not found"
        return c
    c.argv = [str(openfuse_bin), "run", str(pipeline), "--full-refresh"]
    c.version = openfuse_version(openfuse_bin)
    return c


def contender_sling(pg: PG, workdir: Path, py: Path | None, versions: dict) -> Contender:
    schema = "bench_sling"
    c = Contender(
        "sling",
        "Sling: sling run --mode full-refresh (env-var connections)",
        schema,
        lambda: reset_schema(pg, schema),
        None,
    )
    binary = sling_binary(py) if py else None
    if binary is None:
        c.unavailable = "sling-linux-amd64 wheel/binary not installed (x86_64 Linux only)"
        return c
    home = workdir / "sling_home"
    home.mkdir(exist_ok=True)
    c.env = {
        **os.environ,
        "SRC_PG": pg.url(SRC_DB, sslmode="disable"),
        "DST_PG": pg.url(DST_DB, sslmode="disable"),
        "SLING_HOME_DIR": str(home),  # its sqlite state db and env.yaml, not ~/.sling
        "SLING_DISABLE_TELEMETRY": "true",  # otherwise it resolves its telemetry host each run
        "SLING_LOGGING": "NO_COLOR",
    }
    c.argv = [
        str(binary),
        "run",
        "--src-conn",
        "SRC_PG",
        "--src-stream",
        SRC_TABLE,
        "--tgt-conn",
        "DST_PG",
        "--tgt-object",
        f"{schema}.bench_orders",
        "--mode",
        "full-refresh",
    ]
    c.cwd = workdir
    c.version = versions.get("sling-linux-amd64", "")
    return c


def contender_dlt(pg: PG, workdir: Path, py: Path | None, versions: dict) -> Contender:
    schema = "bench_dlt"
    c = Contender(
        "dlt",
        'dlt: sql_table(backend="connectorx", arrow_stream) → postgres, replace, csv COPY',
        schema,
        lambda: reset_schema(pg, schema),
        None,
    )
    if py is None or "dlt" not in versions:
        c.unavailable = "dlt not installed in bench/.venv-baselines"
        return c
    c.env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; name the installed psycopg2 driver. dlt strips
    # the "+psycopg2" again when it hands the URL to ConnectorX.
    src = pg.url(SRC_DB).replace("postgresql://", "postgresql+psycopg2://", 1)
    c.argv = [
        str(py),
        str(DLT_SCRIPT),
        "--src",
        src,
        "--dst",
        pg.url(DST_DB),
        "--schema",
        SRC_TABLE.split(".")[0],
        "--table",
        SRC_TABLE.split(".")[1],
        "--dataset",
        schema,
        "--stream",
        "--file-format",
        "csv",
    ]
    c.cwd = workdir  # dlt looks for .dlt/ config next to the cwd; keep it out of the repo
    c.version = f"dlt {versions.get('dlt', '?')}, connectorx {versions.get('connectorx', '?')}"
    return c


# --------------------------------------------------------------------------------------------
# Running, reporting
# --------------------------------------------------------------------------------------------


def run_benchmark(pg: PG, contenders: list[Contender], rows: int, repeat: int, log_dir: Path) -> list[Result]:
    results = [Result(c) for c in contenders]
    for r in results:
        if r.contender.argv is None:
            print(f"  {r.contender.name:15s} not available: {r.contender.unavailable}")
    # Round-robin (run 1 of every contender, then run 2, ...) so slow drift hits all alike.
    for rep in range(1, repeat + 1):
        for r in results:
            c = r.contender
            if c.argv is None or r.error:
                continue
            c.reset()
            checkpoint(pg)
            m = run_measured(c.argv, log_dir / f"{c.name}.{rep}.log", env=c.env, cwd=c.cwd)
            count, where = dst_row_count(pg, c.schema)
            line = (
                f"  {c.name:15s} run {rep}/{repeat}: {m.seconds:7.2f} s, "
                f"peak RSS {m.max_rss_mb or 0:6.0f} MB (tree {m.tree_rss_mb:.0f} MB)"
            )
            if m.rc != 0:
                r.error = f"exit status {m.rc} (log: {m.log})"
            elif count != rows:
                r.error = (
                    f"row count {count if count is not None else '-'} != {rows:,} ({where}; log: {m.log})"
                )
            if r.error:
                print(f"{line}  FAILED: {r.error}\n" + indent(tail(m.log)), flush=True)
                continue
            print(f"{line}  rows ok ({where})", flush=True)
            r.times.append(m.seconds)
            r.max_rss.append(m.max_rss_mb or 0.0)
            r.tree_rss.append(m.tree_rss_mb)
            # Settle (untimed): otherwise autovacuum picks up the fresh table during the next run.
            pg.query(DST_DB, f"VACUUM (ANALYZE) {where}")
    return results


def table_rows(results: list[Result], rows_n: int) -> tuple[list[str], list[list[str]]]:
    raw = next((r.median for r in results if r.contender.name == "raw"), None)
    header = [
        "contender",
        "status",
        "median s",
        "min s",
        "max s",
        "rows/s",
        "peak RSS MB",
        "tree RSS MB",
        "× raw",
    ]
    rows = []
    for r in results:
        med = r.median
        ok = med is not None
        rows.append(
            [
                r.contender.name,
                r.status if r.status != "not available" else f"not available ({r.contender.unavailable})",
                fmt(med),
                fmt(min(r.times) if ok else None),
                fmt(max(r.times) if ok else None),
                fmt(rows_n / med if ok else None, ",.0f"),
                fmt(max(r.max_rss) if ok else None, ".0f"),
                fmt(max(r.tree_rss) if ok else None, ".0f"),
                fmt(med / raw if ok and raw else None, ".2f"),
            ]
        )
    return header, rows


def targets(results: list[Result]) -> list[list[str]]:
    """One line per (OpenFuse variant, target): measured value and met / not met."""
    by = {r.contender.name: r for r in results}

    def med(name: str) -> float | None:
        return by[name].median if name in by else None

    out = []
    for of in ("openfuse", "openfuse_arrow"):
        if of not in by:
            continue
        m = med(of)
        rss = max(by[of].max_rss) if m is not None else None
        checks = [
            (
                f"≤ {TARGET_VS_RAW}× raw",
                m / med("raw") if m and med("raw") else None,
                "×",
                lambda v: v <= TARGET_VS_RAW,
            ),
            (
                f"≥ {TARGET_VS_SLING:g}× faster than Sling",
                med("sling") / m if m and med("sling") else None,
                "×",
                lambda v: v >= TARGET_VS_SLING,
            ),
            (
                f"≥ {TARGET_VS_DLT:g}× faster than dlt",
                med("dlt") / m if m and med("dlt") else None,
                "×",
                lambda v: v >= TARGET_VS_DLT,
            ),
            (f"peak RSS ≤ {TARGET_RSS_MB:g} MB", rss, " MB", lambda v: v <= TARGET_RSS_MB),
        ]
        for name, value, unit, ok in checks:
            if value is None:
                out.append([of, name, "–", "n/a"])
            else:
                shown = f"{value:.0f}{unit}" if unit == " MB" else f"{value:.2f}{unit}"
                out.append([of, name, shown, "met" if ok(value) else "NOT met"])
    return out


def results_section(rows_n: int, repeat: int, info: dict, results: list[Result]) -> str:
    header, rows = table_rows(results, rows_n)
    versions = [f"{r.contender.name}: {r.contender.version}" for r in results if r.contender.version]
    failures = [f"- **{r.contender.name} FAILED**: {r.error}" for r in results if r.error]
    parts = [
        f"## PostgreSQL → PostgreSQL, full refresh, {rows_n:,} rows",
        "",
        f"- date: {info['date']} (repository commit {info['commit']})",
        f"- machine: {info['machine']}",
        f"- PostgreSQL {info['postgres']} (source and destination databases on the same server, 127.0.0.1)",
        f"- table: `{SRC_TABLE}`, {rows_n:,} rows, ~150 bytes/row; {repeat} runs per contender, "
        "round-robin; median reported",
        f"- versions: {'; '.join(versions) if versions else '–'}",
        "- contenders:",
        *[f"  - `{r.contender.name}`: {r.contender.label}" for r in results],
        "- peak RSS = largest single process of the contender's process tree (`/usr/bin/time -v`); "
        "tree RSS = sampled peak of the summed RSS of all its processes",
        "",
        md_table(header, rows),
        "",
    ]
    if failures:
        parts += failures + [""]
    parts += [
        "Targets (reported, not asserted):",
        "",
        md_table(["variant", "target", "measured", "result"], targets(results)) or "–",
        "",
        f"Rerun: `python bench/pg_to_pg.py --rows {rows_n}`",
        "",
    ]
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rerun: python bench/pg_to_pg.py --rows 1000000",
    )
    ap.add_argument("--rows", type=int, default=1_000_000, help="source table rows (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender (default 3)")
    ap.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"comma-separated contenders (default: all of {','.join(CONTENDERS)})",
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

    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(selected) - set(CONTENDERS))
    if unknown:
        ap.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    if args.rows < 1 or args.repeat < 1:
        ap.error("--rows and --repeat must be positive")
    require_tools()
    pg = PG(args.host, args.port, args.user)

    ensure_databases(pg)
    ensure_source_table(pg, args.rows, args.regen)

    py, versions = None, {}
    if {"sling", "dlt"} & set(selected):
        py = baselines_python()
        versions = baseline_versions(py)

    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"pg_to_pg-{run_id}"
    with tempfile.TemporaryDirectory(prefix="openfuse_bench_") as tmp:
        workdir = Path(tmp)
        factories = {
            "raw": lambda: contender_raw(pg, workdir),
            "openfuse": lambda: contender_openfuse(pg, workdir, passthrough=True, openfuse_bin=args.openfuse),
            "openfuse_arrow": lambda: contender_openfuse(
                pg, workdir, passthrough=False, openfuse_bin=args.openfuse
            ),
            "sling": lambda: contender_sling(pg, workdir, py, versions),
            "dlt": lambda: contender_dlt(pg, workdir, py, versions),
        }
        contenders = [factories[name]() for name in CONTENDERS if name in selected]
        warm_source_cache(pg)
        print(
            f"running {', '.join(c.name for c in contenders)}: {args.repeat} run(s) each, "
            f"{args.rows:,} rows; logs in {log_dir.relative_to(REPO_DIR)}/",
            flush=True,
        )
        results = run_benchmark(pg, contenders, args.rows, args.repeat, log_dir)

    header, rows = table_rows(results, args.rows)
    print_table(
        header, rows, f"PostgreSQL → PostgreSQL, full refresh, {args.rows:,} rows (median of {args.repeat})"
    )
    for of, target, value, verdict in targets(results):
        print(f"  target {of:15s} {target:28s} {value:>9s}  {verdict}")

    if not args.no_results:
        info = machine_info(pg)
        write_results(RESULTS_MD, results_section(args.rows, args.repeat, info, results))
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
