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
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
BASELINES_VENV = BENCH_DIR / ".venv-baselines"
BASELINES_REQUIREMENTS = BENCH_DIR / "requirements-baselines.txt"
DLT_SCRIPT = BENCH_DIR / "baselines" / "dlt_pg.py"
OPENFUSE_BIN = REPO_DIR / ".venv" / "bin" / "openfuse"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
LOG_DIR = BENCH_DIR / ".logs"
GNU_TIME = "/usr/bin/time"

SRC_DB = "openfuse_bench_src"
DST_DB = "openfuse_bench_dst"
SRC_TABLE = "public.bench_orders"

CONTENDERS = ["raw", "openfuse", "openfuse_arrow", "sling", "dlt"]

# Targets reported (never asserted) in the results.
TARGET_VS_RAW = 1.5  # OpenFuse wall time <= 1.5x raw COPY pipe
TARGET_VS_SLING = 4.0  # OpenFuse >= 4x faster than Sling
TARGET_VS_DLT = 8.0  # OpenFuse >= 8x faster than dlt
TARGET_RSS_MB = 200.0  # OpenFuse peak RSS

COLUMNS_DDL = """
    id         bigint,
    name       text,
    qty        int,
    amount     numeric(12,2),
    updated_at timestamptz,
    payload    jsonb
"""


# --------------------------------------------------------------------------------------------
# PostgreSQL helpers (everything goes through psql: the script needs no Python packages)
# --------------------------------------------------------------------------------------------


@dataclass
class PG:
    host: str
    port: int
    user: str

    def url(self, db: str, **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}" + (f"?{q}" if q else "")

    def psql_argv(self, db: str) -> list[str]:
        return ["psql", "-X", "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db,
                "-v", "ON_ERROR_STOP=1"]

    def query(self, db: str, sql: str) -> str:
        """Run SQL, return stdout (unaligned, tuples only); raise with psql's message on error."""
        proc = subprocess.run(self.psql_argv(db) + ["-qtA", "-c", sql],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"psql -d {db} failed: {proc.stderr.strip()}\n  SQL: {sql.strip()}")
        return proc.stdout.strip()

    def script(self, db: str, sql: str) -> None:
        """Run a multi-statement script from stdin."""
        proc = subprocess.run(self.psql_argv(db) + ["-q"], input=sql, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"psql -d {db} failed: {proc.stderr.strip()}")


def ensure_databases(pg: PG) -> None:
    for db in (SRC_DB, DST_DB):
        exists = pg.query("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
        if not exists:
            print(f"creating database {db}")
            pg.query("postgres", f'CREATE DATABASE "{db}"')


def source_row_count(pg: PG) -> Optional[int]:
    if not pg.query(SRC_DB, f"SELECT to_regclass('{SRC_TABLE}') IS NOT NULL") == "t":
        return None
    return int(pg.query(SRC_DB, f"SELECT count(*) FROM {SRC_TABLE}"))


def ensure_source_table(pg: PG, rows: int, regen: bool) -> None:
    """Build public.bench_orders with `rows` deterministic rows, unless it is already there."""
    have = source_row_count(pg)
    if have == rows and not regen:
        print(f"source {SRC_DB}.{SRC_TABLE}: reusing existing {rows:,} rows")
        return
    why = "--regen" if regen else ("missing" if have is None else f"has {have:,} rows")
    print(f"source {SRC_DB}.{SRC_TABLE}: generating {rows:,} rows ({why}) ...", flush=True)
    t0 = time.perf_counter()
    # Deterministic (no random()): every machine gets byte-identical data. Average row is
    # ~153 bytes in COPY text form. The primary key is added after the bulk insert (faster),
    # then VACUUM FREEZE sets hint bits so no contender pays for them on its first read.
    pg.script(SRC_DB, f"""
        DROP TABLE IF EXISTS {SRC_TABLE};
        CREATE TABLE {SRC_TABLE} ({COLUMNS_DDL});
        INSERT INTO {SRC_TABLE}
        SELECT g,
               'customer_' || lpad((g % 100000)::text, 6, '0') || ' ' || left(md5(g::text), 10),
               (g % 97)::int + 1,
               ((g * 7919) % 10000000) / 100.0,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds',
               jsonb_build_object(
                   'sku',    'SKU-' || lpad((g % 5000)::text, 5, '0'),
                   'status', (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
                   'note',   md5((g * 31)::text))
        FROM generate_series(1::bigint, {rows}::bigint) AS g;
        ALTER TABLE {SRC_TABLE} ADD PRIMARY KEY (id);
        VACUUM (FREEZE, ANALYZE) {SRC_TABLE};
    """)
    size = pg.query(SRC_DB, f"SELECT pg_size_pretty(pg_table_size('{SRC_TABLE}'))")
    print(f"  done in {time.perf_counter() - t0:.1f}s, heap size {size}")


def warm_source_cache(pg: PG) -> None:
    """Read the whole source table once (untimed) so the first contender does not start cold."""
    print("warming the source table cache (one untimed COPY to /dev/null)")
    with open(os.devnull, "wb") as devnull:
        subprocess.run(pg.psql_argv(SRC_DB) + ["-c", f"COPY (SELECT * FROM {SRC_TABLE}) TO STDOUT (FORMAT binary)"],
                       stdout=devnull, check=True)


def find_dst_table(pg: PG, schema: str) -> Optional[str]:
    """The loaded table in `schema`: bench_orders, or any table whose name ends with it."""
    names = pg.query(DST_DB, f"""
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = '{schema}' AND table_name LIKE '%bench_orders'
        ORDER BY (table_name = 'bench_orders') DESC, length(table_name)""").splitlines()
    return f'"{schema}"."{names[0]}"' if names else None


def dst_row_count(pg: PG, schema: str) -> tuple[Optional[int], str]:
    table = find_dst_table(pg, schema)
    if table is None:
        return None, f"no bench_orders table in schema {schema}"
    return int(pg.query(DST_DB, f"SELECT count(*) FROM {table}")), table


def reset_schema(pg: PG, schema: str) -> None:
    pg.script(DST_DB, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE;')


def checkpoint(pg: PG) -> None:
    pg.query(DST_DB, "CHECKPOINT")


# --------------------------------------------------------------------------------------------
# Measuring a subprocess: wall time, peak RSS of the largest process, peak summed tree RSS
# --------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    seconds: float
    rc: int
    max_rss_mb: Optional[float]  # largest single process (kernel high-water mark via time -v)
    tree_rss_mb: float  # peak of the summed RSS of the process tree (sampled)
    log: Path


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) may contain spaces: ppid is the 2nd field after the last ')'
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree (excluding the root `time` wrapper)."""

    def __init__(self, root: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = [p for p in _process_tree(self.root) if p != self.root]
            self.peak = max(self.peak, sum(_rss_bytes(p) for p in pids))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(argv: list[str], log: Path, env: Optional[dict] = None,
                 cwd: Optional[Path] = None) -> Measurement:
    """Run argv under `/usr/bin/time -v`, output to `log`; return time and memory figures."""
    log.parent.mkdir(parents=True, exist_ok=True)
    time_out = log.with_suffix(".time")
    full = [GNU_TIME, "-v", "-o", str(time_out)] + argv
    with open(log, "wb") as out:
        out.write(("$ " + shlex.join(argv) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        seconds = time.perf_counter() - t0
        sampler.stop()
    max_rss_mb = None
    if time_out.exists():
        for line in time_out.read_text().splitlines():
            if "Maximum resident set size" in line:
                max_rss_mb = int(line.rsplit(":", 1)[1]) / 1024
            elif line.startswith("Command exited with non-zero status"):
                rc = rc or int(line.rsplit(" ", 1)[1])
    return Measurement(seconds, rc, max_rss_mb, sampler.peak / 2**20, log)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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
        print(f"creating baseline virtualenv {BASELINES_VENV.relative_to(REPO_DIR)} (python3 -m venv)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BASELINES_VENV)], check=True)
    print(f"installing baselines: pip install -r {BASELINES_REQUIREMENTS.relative_to(REPO_DIR)} "
          "(sling, dlt, connectorx; a few minutes the first time)", flush=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(BASELINES_REQUIREMENTS)], check=True)
    marker.write_text(want + "\n")
    return py


def sling_binary(py: Path) -> Optional[Path]:
    """The Go binary inside the sling-linux-amd64 wheel (the package exposes it as SLING_BIN)."""
    proc = subprocess.run([str(py), "-c", "import sling_linux_amd64 as s; print(s.SLING_BIN)"],
                          capture_output=True, text=True)
    path = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
    return path if path and os.access(path, os.X_OK) else None


def baseline_versions(py: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m\n"
            "for n in ('sling-linux-amd64', 'dlt', 'connectorx', 'pyarrow'):\n"
            "    try: print(n, m.version(n))\n"
            "    except m.PackageNotFoundError: pass\n")
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
    argv: Optional[list[str]]  # None: not available
    env: Optional[dict] = None
    cwd: Optional[Path] = None
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
    def median(self) -> Optional[float]:
        return statistics.median(self.times) if self.times and not self.error else None


def contender_raw(pg: PG, workdir: Path) -> Contender:
    schema = "bench_raw"

    def reset() -> None:
        # Same columns as the source, no primary key: the floor for moving the bytes (the other
        # tools create their tables without a primary key too).
        pg.script(DST_DB, f"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE TABLE IF NOT EXISTS {schema}.bench_orders ({COLUMNS_DDL});
            TRUNCATE {schema}.bench_orders;
        """)

    copy_out = f"COPY (SELECT * FROM {SRC_TABLE}) TO STDOUT (FORMAT binary)"
    copy_in = f"COPY {schema}.bench_orders FROM STDIN (FORMAT binary)"
    pipe = (f"set -o pipefail; {shlex.join(pg.psql_argv(SRC_DB) + ['-c', copy_out])}"
            f" | {shlex.join(pg.psql_argv(DST_DB) + ['-c', copy_in])}")
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return Contender("raw", "psql COPY … TO STDOUT (binary) | psql COPY … FROM STDIN, into an empty table", schema, reset,
                     ["bash", "-c", pipe], version=version)


def contender_openfuse(pg: PG, workdir: Path, passthrough: bool, openfuse_bin: Path) -> Contender:
    name = "openfuse" if passthrough else "openfuse_arrow"
    label = ("OpenFuse: openfuse run --full-refresh (COPY pass-through)" if passthrough
             else "OpenFuse: same pipeline, stream `passthrough: false` (decoded Arrow path)")
    schema = "bench_openfuse"
    pipeline = workdir / f"{name}.yaml"
    stream_extra = "" if passthrough else "\n    passthrough: false"
    pipeline.write_text(f"""\
name: bench_pg_to_pg
source:      {{connector: postgres, config: {{dsn: "{pg.url(SRC_DB)}"}}}}
destination: {{connector: postgres, config: {{dsn: "{pg.url(DST_DB)}", schema: {schema}}}}}
streams:
  - name: {SRC_TABLE}
    mode: full_refresh_overwrite{stream_extra}
""")
    c = Contender(name, label, schema, lambda: reset_schema(pg, schema), None, cwd=workdir)
    if not os.access(openfuse_bin, os.X_OK):
        c.unavailable = f"{openfuse_bin} not found"
        return c
    c.argv = [str(openfuse_bin), "run", str(pipeline), "--full-refresh"]
    proc = subprocess.run([str(openfuse_bin), "--version"], capture_output=True, text=True)
    c.version = proc.stdout.strip() if proc.returncode == 0 else ""
    return c


def contender_sling(pg: PG, workdir: Path, py: Optional[Path], versions: dict) -> Contender:
    schema = "bench_sling"
    c = Contender("sling", "Sling: sling run --mode full-refresh (env-var connections)", schema, lambda: reset_schema(pg, schema), None)
    binary = sling_binary(py) if py else None
    if binary is None:
        c.unavailable = "sling-linux-amd64 wheel/binary not installed (x86_64 Linux only)"
        return c
    home = workdir / "sling_home"
    home.mkdir(exist_ok=True)
    c.env = {**os.environ,
             "SRC_PG": pg.url(SRC_DB, sslmode="disable"),
             "DST_PG": pg.url(DST_DB, sslmode="disable"),
             "SLING_HOME_DIR": str(home),  # its sqlite state db and env.yaml, not ~/.sling
             "SLING_DISABLE_TELEMETRY": "true",  # otherwise it resolves its telemetry host each run
             "SLING_LOGGING": "NO_COLOR"}
    c.argv = [str(binary), "run", "--src-conn", "SRC_PG", "--src-stream", SRC_TABLE,
              "--tgt-conn", "DST_PG", "--tgt-object", f"{schema}.bench_orders", "--mode", "full-refresh"]
    c.cwd = workdir
    c.version = versions.get("sling-linux-amd64", "")
    return c


def contender_dlt(pg: PG, workdir: Path, py: Optional[Path], versions: dict) -> Contender:
    schema = "bench_dlt"
    c = Contender("dlt", "dlt: sql_table(backend=\"connectorx\", arrow_stream) → postgres, replace, csv COPY", schema, lambda: reset_schema(pg, schema), None)
    if py is None or "dlt" not in versions:
        c.unavailable = "dlt not installed in bench/.venv-baselines"
        return c
    c.env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; name the installed psycopg2 driver. dlt strips
    # the "+psycopg2" again when it hands the URL to ConnectorX.
    src = pg.url(SRC_DB).replace("postgresql://", "postgresql+psycopg2://", 1)
    c.argv = [str(py), str(DLT_SCRIPT), "--src", src, "--dst", pg.url(DST_DB),
              "--schema", SRC_TABLE.split(".")[0], "--table", SRC_TABLE.split(".")[1],
              "--dataset", schema, "--stream", "--file-format", "csv"]
    c.cwd = workdir  # dlt looks for .dlt/ config next to the cwd; keep it out of the repo
    c.version = f"dlt {versions.get('dlt', '?')}, connectorx {versions.get('connectorx', '?')}"
    return c


# --------------------------------------------------------------------------------------------
# Running, reporting
# --------------------------------------------------------------------------------------------


def run_benchmark(pg: PG, contenders: list[Contender], rows: int, repeat: int,
                  log_dir: Path) -> list[Result]:
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
            line = (f"  {c.name:15s} run {rep}/{repeat}: {m.seconds:7.2f} s, "
                    f"peak RSS {m.max_rss_mb or 0:6.0f} MB (tree {m.tree_rss_mb:.0f} MB)")
            if m.rc != 0:
                r.error = f"exit status {m.rc} (log: {m.log})"
            elif count != rows:
                r.error = (f"row count {count if count is not None else '-'} != {rows:,} "
                           f"({where}; log: {m.log})")
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


def indent(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def fmt(x: Optional[float], spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def table_rows(results: list[Result], rows_n: int) -> tuple[list[str], list[list[str]]]:
    raw = next((r.median for r in results if r.contender.name == "raw"), None)
    header = ["contender", "status", "median s", "min s", "max s", "rows/s",
              "peak RSS MB", "tree RSS MB", "× raw"]
    rows = []
    for r in results:
        med = r.median
        ok = med is not None
        rows.append([
            r.contender.name,
            r.status if r.status != "not available" else f"not available ({r.contender.unavailable})",
            fmt(med),
            fmt(min(r.times) if ok else None),
            fmt(max(r.times) if ok else None),
            fmt(rows_n / med if ok else None, ",.0f"),
            fmt(max(r.max_rss) if ok else None, ".0f"),
            fmt(max(r.tree_rss) if ok else None, ".0f"),
            fmt(med / raw if ok and raw else None, ".2f"),
        ])
    return header, rows


def targets(results: list[Result]) -> list[list[str]]:
    """One line per (OpenFuse variant, target): measured value and met / not met."""
    by = {r.contender.name: r for r in results}

    def med(name: str) -> Optional[float]:
        return by[name].median if name in by else None

    out = []
    for of in ("openfuse", "openfuse_arrow"):
        if of not in by:
            continue
        m = med(of)
        rss = max(by[of].max_rss) if m is not None else None
        checks = [
            (f"≤ {TARGET_VS_RAW}× raw", m / med("raw") if m and med("raw") else None, "×",
             lambda v: v <= TARGET_VS_RAW),
            (f"≥ {TARGET_VS_SLING:g}× faster than Sling", med("sling") / m if m and med("sling") else None, "×",
             lambda v: v >= TARGET_VS_SLING),
            (f"≥ {TARGET_VS_DLT:g}× faster than dlt", med("dlt") / m if m and med("dlt") else None, "×",
             lambda v: v >= TARGET_VS_DLT),
            (f"peak RSS ≤ {TARGET_RSS_MB:g} MB", rss, " MB", lambda v: v <= TARGET_RSS_MB),
        ]
        for name, value, unit, ok in checks:
            if value is None:
                out.append([of, name, "–", "n/a"])
            else:
                shown = f"{value:.0f}{unit}" if unit == " MB" else f"{value:.2f}{unit}"
                out.append([of, name, shown, "met" if ok(value) else "NOT met"])
    return out


def print_table(header: list[str], rows: list[list[str]], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print(f"\n{title}")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        return
    t = Table(title=title)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i < 2 else "right")
    for r in rows:
        t.add_row(*r)
    Console().print(t)


def machine_info(pg: PG) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    commit = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{nproc} CPUs ({cpu}), {mem} RAM, {platform.system()} {platform.machine()}",
        "postgres": pg.query("postgres", "SHOW server_version"),
        "commit": commit or "(no commit yet)",
    }


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


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
    parts += ["Targets (reported, not asserted):", "",
              md_table(["variant", "target", "measured", "result"], targets(results)) or "–", "",
              f"Rerun: `python bench/pg_to_pg.py --rows {rows_n}`", ""]
    return "\n".join(parts)


def write_results(path: Path, section: str) -> None:
    """Replace the section with the same '## ' heading, keep every other section."""
    heading = section.splitlines()[0]
    text = path.read_text() if path.exists() else (
        "# OpenFuse benchmark results\n\nWritten by the scripts in `bench/`; see `bench/README.md`.\n\n")
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start] + section.rstrip("\n").splitlines() + [""] + lines[end:])
    path.write_text(new.rstrip("\n") + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Rerun: python bench/pg_to_pg.py --rows 1000000")
    ap.add_argument("--rows", type=int, default=1_000_000, help="source table rows (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender (default 3)")
    ap.add_argument("--only", default=",".join(CONTENDERS),
                    help=f"comma-separated contenders (default: all of {','.join(CONTENDERS)})")
    ap.add_argument("--regen", action="store_true", help="rebuild the source table")
    ap.add_argument("--no-results", action="store_true", help=f"do not write {RESULTS_MD.name}")
    ap.add_argument("--openfuse", type=Path, default=OPENFUSE_BIN,
                    help="openfuse executable (default: <repo>/.venv/bin/openfuse)")
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
    for tool in ("psql", GNU_TIME):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (apt-get install postgresql-client time)")
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
            "openfuse_arrow": lambda: contender_openfuse(pg, workdir, passthrough=False, openfuse_bin=args.openfuse),
            "sling": lambda: contender_sling(pg, workdir, py, versions),
            "dlt": lambda: contender_dlt(pg, workdir, py, versions),
        }
        contenders = [factories[name]() for name in CONTENDERS if name in selected]
        warm_source_cache(pg)
        print(f"running {', '.join(c.name for c in contenders)}: {args.repeat} run(s) each, "
              f"{args.rows:,} rows; logs in {log_dir.relative_to(REPO_DIR)}/", flush=True)
        results = run_benchmark(pg, contenders, args.rows, args.repeat, log_dir)

    header, rows = table_rows(results, args.rows)
    print_table(header, rows, f"PostgreSQL → PostgreSQL, full refresh, {args.rows:,} rows "
                              f"(median of {args.repeat})")
    for of, target, value, verdict in targets(results):
        print(f"  target {of:15s} {target:28s} {value:>9s}  {verdict}")

    if not args.no_results:
        info = machine_info(pg)
        write_results(RESULTS_MD, results_section(args.rows, args.repeat, info, results))
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
