"""Helpers shared by the benchmark scripts in bench/ (standard library only).

PostgreSQL access through `psql`, the deterministic `bench_orders` generator, the measured
subprocess runner (`/usr/bin/time -v` + a /proc tree-RSS sampler), OpenFuse pipeline files, and
the RESULTS.md section writer. Import it from a script in bench/ (`python bench/x.py` puts bench/
on sys.path).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OPENFUSE_BIN = REPO_DIR / ".venv" / "bin" / "openfuse"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
LOG_DIR = BENCH_DIR / ".logs"
GNU_TIME = "/usr/bin/time"

SRC_DB = "openfuse_bench_src"
DST_DB = "openfuse_bench_dst"
SRC_TABLE = "public.bench_orders"

TARGET_RSS_MB = 200.0  # OpenFuse peak RSS target (reported, never asserted)

COLUMNS_DDL = """
    id         bigint,
    name       text,
    qty        int,
    amount     numeric(12,2),
    updated_at timestamptz,
    payload    jsonb
"""

# The generator's expressions for the columns the incremental benchmark touches, as functions of
# the row number g (= id): pg_incremental.py uses them to put updated rows back afterwards.
GEN_QTY = "({g} % 97)::int + 1"
GEN_UPDATED_AT = "timestamptz '2024-01-01 00:00:00+00' + {g} * interval '17 seconds'"


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
        return [
            "psql",
            "-X",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
        ]

    def query(self, db: str, sql: str) -> str:
        """Run SQL, return stdout (unaligned, tuples only); raise with psql's message on error."""
        proc = subprocess.run([*self.psql_argv(db), "-qtA", "-c", sql], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"psql -d {db} failed: {proc.stderr.strip()}\n  SQL: {sql.strip()}")
        return proc.stdout.strip()

    def script(self, db: str, sql: str) -> None:
        """Run a multi-statement script from stdin."""
        proc = subprocess.run([*self.psql_argv(db), "-q"], input=sql, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"psql -d {db} failed: {proc.stderr.strip()}")


def ensure_databases(pg: PG) -> None:
    for db in (SRC_DB, DST_DB):
        exists = pg.query("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
        if not exists:
            print(f"creating database {db}")
            pg.query("postgres", f'CREATE DATABASE "{db}"')


def source_row_count(pg: PG, table: str = SRC_TABLE) -> int | None:
    if pg.query(SRC_DB, f"SELECT to_regclass('{table}') IS NOT NULL") != "t":
        return None
    return int(pg.query(SRC_DB, f"SELECT count(*) FROM {table}"))


def ensure_source_table(pg: PG, rows: int, regen: bool, table: str = SRC_TABLE) -> None:
    """Build `table` (default public.bench_orders) with `rows` deterministic rows, unless it is there."""
    have = source_row_count(pg, table)
    if have == rows and not regen:
        print(f"source {SRC_DB}.{table}: reusing existing {rows:,} rows")
        return
    why = "--regen" if regen else ("missing" if have is None else f"has {have:,} rows")
    print(f"source {SRC_DB}.{table}: generating {rows:,} rows ({why}) ...", flush=True)
    t0 = time.perf_counter()
    # Deterministic (no random()): every machine gets byte-identical data. Average row is
    # ~153 bytes in COPY text form. The primary key is added after the bulk insert (faster),
    # then VACUUM FREEZE sets hint bits so no contender pays for them on its first read.
    pg.script(
        SRC_DB,
        f"""
        DROP TABLE IF EXISTS {table};
        CREATE TABLE {table} ({COLUMNS_DDL});
        INSERT INTO {table}
        SELECT g,
               'customer_' || lpad((g % 100000)::text, 6, '0') || ' ' || left(md5(g::text), 10),
               {GEN_QTY.format(g="g")},
               ((g * 7919) % 10000000) / 100.0,
               {GEN_UPDATED_AT.format(g="g")},
               jsonb_build_object(
                   'sku',    'SKU-' || lpad((g % 5000)::text, 5, '0'),
                   'status', (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
                   'note',   md5((g * 31)::text))
        FROM generate_series(1::bigint, {rows}::bigint) AS g;
        ALTER TABLE {table} ADD PRIMARY KEY (id);
        VACUUM (FREEZE, ANALYZE) {table};
    """,
    )
    size = pg.query(SRC_DB, f"SELECT pg_size_pretty(pg_table_size('{table}'))")
    print(f"  done in {time.perf_counter() - t0:.1f}s, heap size {size}")


def warm_source_cache(pg: PG, table: str = SRC_TABLE) -> None:
    """Read the whole source table once (untimed) so the first contender does not start cold."""
    print(f"warming the cache of {table} (one untimed COPY to /dev/null)")
    with open(os.devnull, "wb") as devnull:
        subprocess.run(
            [*pg.psql_argv(SRC_DB), "-c", f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)"],
            stdout=devnull,
            check=True,
        )


def find_dst_table(pg: PG, schema: str, name: str = "bench_orders") -> str | None:
    """The loaded table in `schema`: `name`, or any table whose name ends with it."""
    names = pg.query(
        DST_DB,
        f"""
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = '{schema}' AND table_name LIKE '%{name}'
        ORDER BY (table_name = '{name}') DESC, length(table_name)""",
    ).splitlines()
    return f'"{schema}"."{names[0]}"' if names else None


def dst_row_count(pg: PG, schema: str, name: str = "bench_orders") -> tuple[int | None, str]:
    table = find_dst_table(pg, schema, name)
    if table is None:
        return None, f"no {name} table in schema {schema}"
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
    max_rss_mb: float | None  # largest single process (kernel high-water mark via time -v)
    tree_rss_mb: float  # peak of the summed RSS of the process tree (sampled)
    log: Path
    # (seconds since start, summed tree RSS in MB), one per sample: how memory moves during the run
    samples: list[tuple[float, float]] = field(default_factory=list)
    # user + system CPU seconds of the process tree (time -v): less sensitive than wall time to
    # other work on the machine; the database server's own work is not in it
    cpu_seconds: float | None = None

    def tree_rss_at(self, fraction: float) -> float | None:
        """Summed tree RSS (MB) of the last sample taken before `fraction` of the wall time."""
        before = [mb for t, mb in self.samples if t <= fraction * self.seconds]
        return before[-1] if before else None


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
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
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
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop_event.is_set():
            pids = [p for p in _process_tree(self.root) if p != self.root]
            rss = sum(_rss_bytes(p) for p in pids)
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter() - t0, rss / 2**20))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(argv: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> Measurement:
    """Run argv under `/usr/bin/time -v`, output to `log`; return time and memory figures."""
    log.parent.mkdir(parents=True, exist_ok=True)
    time_out = log.with_suffix(".time")
    full = [GNU_TIME, "-v", "-o", str(time_out), *argv]
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
    cpu = None
    if time_out.exists():
        for line in time_out.read_text().splitlines():
            if "Maximum resident set size" in line:
                max_rss_mb = int(line.rsplit(":", 1)[1]) / 1024
            elif "User time (seconds)" in line or "System time (seconds)" in line:
                cpu = (cpu or 0.0) + float(line.rsplit(":", 1)[1])
            elif line.startswith("Command exited with non-zero status"):
                rc = rc or int(line.rsplit(" ", 1)[1])
    return Measurement(seconds, rc, max_rss_mb, sampler.peak / 2**20, log, sampler.samples, cpu)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def indent(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def print_table(header: list[str], rows: list[list[str]], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print(f"\n{title}")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)))
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
    commit = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    # The code under test may differ from the commit while it is being worked on: say so.
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "openfuse_connectors", "pyproject.toml"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if commit and dirty:
        commit += " + uncommitted changes in openfuse_connectors/"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{nproc} CPUs ({cpu}), {mem} RAM, {platform.system()} {platform.machine()}",
        "postgres": pg.query("postgres", "SHOW server_version"),
        "pg_settings": ", ".join(
            line.replace("|", " = ")
            for line in pg.query(
                "postgres",
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('shared_buffers', "
                "'max_wal_size', 'wal_level', 'synchronous_commit') ORDER BY name",
            ).splitlines()
        ),
        "commit": commit or "(no commit yet)",
    }


def load_average() -> str:
    """The 1/5/15-minute load averages, to note how busy the machine was (other work adds noise)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_idle(window: float = 1.0) -> float:
    """Fraction of all CPUs' time spent idle (or in iowait) over the next `window` seconds."""

    def snap() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals[:8])  # idle + iowait, all (without guest, counted in user)

    i0, t0 = snap()
    time.sleep(window)
    i1, t1 = snap()
    return (i1 - i0) / (t1 - t0) if t1 > t0 else 1.0


def cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of all CPUs so far; two of them give the busy share between."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    return vals[3] + vals[4], sum(vals[:8])


def cpu_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Fraction of all CPUs' time spent busy between two :func:`cpu_times` snapshots."""
    idle, total = after[0] - before[0], after[1] - before[1]
    return 1.0 - idle / total if total > 0 else 0.0


def wait_for_idle(min_idle: float, timeout: float, window: float = 1.0) -> tuple[float, float]:
    """Wait until the machine is at least `min_idle` idle over `window` s, at most `timeout` s.

    For timings on a shared host: other work running at the same time shows up as noise. Returns
    (idle fraction of the last window, seconds waited); the caller records both.
    """
    start = time.perf_counter()
    idle = cpu_idle(window)
    while idle < min_idle and time.perf_counter() - start < timeout:
        idle = cpu_idle(window)
    return idle, time.perf_counter() - start


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(path: Path, section: str) -> None:
    """Replace the section with the same '## ' heading, keep every other section."""
    heading = section.splitlines()[0]
    text = (
        path.read_text()
        if path.exists()
        else (
            "# OpenFuse benchmark results\n\nWritten by the scripts in `bench/`; see `bench/README.md`.\n\n"
        )
    )
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start] + section.rstrip("\n").splitlines() + [""] + lines[end:])
    path.write_text(new.rstrip("\n") + "\n")


# --------------------------------------------------------------------------------------------
# OpenFuse: pipeline files, version, the per-stream summary it prints
# --------------------------------------------------------------------------------------------


def require_tools() -> None:
    for tool in ("psql", GNU_TIME):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (apt-get install postgresql-client time)")


def write_pipeline(path: Path, pg: PG, name: str, schema: str, stream: str, mode: str, *extra: str) -> Path:
    """An OpenFuse pipeline YAML: one stream of SRC_DB into `schema` of DST_DB.

    `extra` are more stream keys, one `key: value` string each (e.g. "passthrough: false").
    """
    lines = "".join(f"\n    {e}" for e in extra)
    path.write_text(f"""\
name: {name}
source:      {{connector: postgres, config: {{dsn: "{pg.url(SRC_DB)}"}}}}
destination: {{connector: postgres, config: {{dsn: "{pg.url(DST_DB)}", schema: {schema}}}}}
streams:
  - name: {stream}
    mode: {mode}{lines}
""")
    return path


def openfuse_version(openfuse_bin: Path) -> str:
    """`openfuse --version` if it has one, else the installed distribution's version."""
    proc = subprocess.run([str(openfuse_bin), "--version"], capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    py = openfuse_bin.parent / "python"
    proc = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('openfuse'))"],
        capture_output=True,
        text=True,
    )
    return f"openfuse {proc.stdout.strip()}" if proc.returncode == 0 and proc.stdout.strip() else ""


@dataclass
class StreamSummary:
    """One row of the table `openfuse run` prints: what the engine itself reports."""

    rows_read: int
    rows_written: int
    seconds: float  # the engine's own time for the stream (no interpreter start-up, imports)
    status: str


def parse_openfuse_summary(log: Path, stream: str) -> StreamSummary | None:
    """Read the stream's row of `openfuse run`'s summary table from the run's log (best effort)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").replace("┃", "|").split("|")]
        cells = [c for c in cells if c]
        if len(cells) >= 7 and cells[0] == stream:
            try:
                return StreamSummary(
                    int(cells[2].replace(",", "")), int(cells[3].replace(",", "")), float(cells[5]), cells[6]
                )
            except ValueError:
                return None
    return None
