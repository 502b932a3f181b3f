#!/usr/bin/env python3
"""MySQL/MariaDB -> PostgreSQL full-refresh benchmark: OpenFuse against Sling, dlt and a raw pipe.

Rerun (from the repository root; needs python3, the `mysql` and `psql` clients, GNU time, a
MySQL or MariaDB server and a PostgreSQL server):

    python bench/mysql_to_pg.py --rows 1000000

Options worth knowing:
    --rows N            table size (default 1,000,000; the source table is reused if it has N rows)
    --regen             rebuild the source table even if it already has N rows
    --repeat K          runs per contender, the median is reported (default 3)
    --only openfuse,dlt run only these contenders (raw, openfuse, sling, dlt)
    --mysql-host/--mysql-port/--mysql-user   the source server (default root@127.0.0.1:3306,
                        no password; MYSQL_PWD in the environment is passed on to the clients)
    --no-results        do not touch bench/RESULTS.md

What it does:
  1. Creates the MariaDB database `openfuse_bench` and in it `bench_orders` (bigint id primary key,
     varchar name, int qty, decimal(12,2) amount, datetime(6) updated_at, json payload; ~150 bytes a
     row) server-side with INSERT ... SELECT over a cross join of digits: the same deterministic
     values as the PostgreSQL generator in common.py. An existing table with N rows is reused.
  2. Runs every contender --repeat times, round-robin, each a fresh subprocess under
     `/usr/bin/time -v` (the runner and the row-count check of pg_to_pg.py, through common.py):
     the destination schema in openfuse_bench_dst is dropped and checkpointed before each run
     (untimed), and after each run the destination must hold exactly N rows.
  3. Prints a table and replaces the section "## MySQL/MariaDB → PostgreSQL, full refresh, N rows"
     of bench/RESULTS.md, with the machine and its load average at the start and the end.

Contenders: `raw` (`mysql --quick --batch` | `psql COPY FROM STDIN`, text format, into an empty
table: the floor for moving the rows), `openfuse` (`openfuse run PIPELINE --full-refresh`, source
connector `mysql`), `sling` and `dlt` (bench/.venv-baselines, as in pg_to_pg.py; dlt reads with
ConnectorX and reflects the table through SQLAlchemy + PyMySQL). Targets are reported, never
asserted. Exit status: 0 unless a contender that ran failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import (
    BENCH_DIR,
    DST_DB,
    LOG_DIR,
    OPENFUSE_BIN,
    PG,
    REPO_DIR,
    RESULTS_MD,
    TARGET_RSS_MB,
    ensure_databases,
    fmt,
    load_average,
    machine_info,
    md_table,
    openfuse_version,
    print_table,
    require_tools,
    reset_schema,
    write_results,
)
from pg_to_pg import (
    Contender,
    Result,
    baseline_versions,
    baselines_python,
    run_benchmark,
    sling_binary,
    table_rows,
)

DLT_SCRIPT = BENCH_DIR / "baselines" / "dlt_pg.py"  # takes any SQLAlchemy source URL
MY_DB = "openfuse_bench"
MY_TABLE = "bench_orders"
CONTENDERS = ["raw", "openfuse", "sling", "dlt"]

# Targets reported (never asserted), as for PostgreSQL -> PostgreSQL.
TARGET_VS_SLING = 4.0
TARGET_VS_DLT = 8.0


@dataclass
class MySQL:
    host: str
    port: int
    user: str

    def argv(self, db: str | None = None) -> list[str]:
        out = [
            "mysql",
            "-h",
            self.host,
            "-P",
            str(self.port),
            "-u",
            self.user,
            "--batch",
            "--skip-column-names",
        ]
        return [*out, db] if db else out

    def query(self, sql: str, db: str | None = MY_DB) -> str:
        proc = subprocess.run([*self.argv(db), "-e", sql], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"mysql failed: {proc.stderr.strip()}\n  SQL: {sql.strip()}")
        return proc.stdout.strip()

    def url(self, scheme: str = "mysql") -> str:
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{MY_DB}"


def ensure_mysql_table(my: MySQL, rows: int, regen: bool) -> None:
    my.query(f"CREATE DATABASE IF NOT EXISTS `{MY_DB}`", db=None)
    exists = my.query(
        f"SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{MY_DB}' "
        f"AND TABLE_NAME = '{MY_TABLE}'"
    )
    have = int(my.query(f"SELECT count(*) FROM `{MY_TABLE}`")) if exists == "1" else None
    if have == rows and not regen:
        print(f"source {MY_DB}.{MY_TABLE} (MySQL): reusing existing {rows:,} rows")
        return
    why = "--regen" if regen else ("missing" if have is None else f"has {have:,} rows")
    print(f"source {MY_DB}.{MY_TABLE} (MySQL): generating {rows:,} rows ({why}) ...", flush=True)
    # g = 1 .. rows from a cross join of digit tables (works on MySQL and MariaDB, no sequence
    # engine or recursion limit needed). Same values as common.ensure_source_table's generator.
    digits = len(str(rows))
    d = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
    g = " + ".join(f"d{i}.d * {10**i}" for i in range(digits))
    joins = " CROSS JOIN ".join(f"{d} d{i}" for i in range(digits))
    t0 = dt.datetime.now()
    my.query(
        f"""
        DROP TABLE IF EXISTS `{MY_TABLE}`;
        CREATE TABLE `{MY_TABLE}` (
            id bigint NOT NULL PRIMARY KEY,
            name varchar(64),
            qty int,
            amount decimal(12,2),
            updated_at datetime(6),
            payload json
        ) ENGINE=InnoDB;
        INSERT INTO `{MY_TABLE}`
        SELECT g,
               CONCAT('customer_', LPAD(g % 100000, 6, '0'), ' ', LEFT(MD5(g), 10)),
               g % 97 + 1,
               ((g * 7919) % 10000000) / 100.0,
               TIMESTAMP('2024-01-01 00:00:00') + INTERVAL (g * 17) SECOND,
               JSON_OBJECT('sku', CONCAT('SKU-', LPAD(g % 5000, 5, '0')),
                           'status', ELT(1 + g % 4, 'new', 'paid', 'shipped', 'returned'),
                           'note', MD5(g * 31))
        FROM (SELECT 1 + {g} AS g FROM {joins}) AS s
        WHERE g <= {rows}
        ORDER BY g;
        ANALYZE TABLE `{MY_TABLE}`;
        """
    )
    size = my.query(
        "SELECT CONCAT(ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576), ' MB') FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = '{MY_DB}' AND TABLE_NAME = '{MY_TABLE}'"
    )
    print(f"  done in {(dt.datetime.now() - t0).total_seconds():.1f}s, InnoDB size {size}")


def warm_mysql(my: MySQL) -> None:
    print(f"warming the cache of {MY_DB}.{MY_TABLE} (one untimed full read to /dev/null)")
    with open(os.devnull, "wb") as devnull:
        subprocess.run(
            [*my.argv(MY_DB), "--quick", "-e", f"SELECT * FROM `{MY_TABLE}`"], stdout=devnull, check=True
        )


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------


def contender_raw(pg: PG, my: MySQL) -> Contender:
    schema = "bench_mysql_raw"

    def reset() -> None:
        pg.script(
            DST_DB,
            f"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE TABLE IF NOT EXISTS {schema}.bench_orders (
                id bigint, name text, qty int, amount numeric(12,2), updated_at timestamp, payload jsonb);
            TRUNCATE {schema}.bench_orders;
        """,
        )

    # mysql --batch writes tab-separated text with \t \n \\ escaped: PostgreSQL's COPY text format
    # (its NULL is the word NULL; the generated table has none).
    select = f"SELECT id, name, qty, amount, updated_at, payload FROM `{MY_TABLE}`"
    copy_in = f"COPY {schema}.bench_orders FROM STDIN"
    pipe = (
        f"set -o pipefail; {shlex.join([*my.argv(MY_DB), '--quick', '-e', select])}"
        f" | {shlex.join([*pg.psql_argv(DST_DB), '-c', copy_in])}"
    )
    version = subprocess.run(["mysql", "--version"], capture_output=True, text=True).stdout.strip()
    return Contender(
        "raw",
        "mysql --quick --batch -e 'SELECT …' | psql COPY … FROM STDIN (text), into an empty table",
        schema,
        reset,
        ["bash", "-c", pipe],
        version=version,
    )


def contender_openfuse(pg: PG, my: MySQL, workdir: Path, openfuse_bin: Path) -> Contender:
    schema = "bench_mysql_openfuse"
    pipeline = workdir / "openfuse_mysql.yaml"
    pipeline.write_text(f"""\
name: bench_mysql_to_pg
source:
  connector: mysql
  config: {{host: "{my.host}", port: {my.port}, user: "{my.user}", password: "${{MYSQL_PWD:-}}", database: {MY_DB}}}
destination: {{connector: postgres, config: {{dsn: "{pg.url(DST_DB)}", schema: {schema}}}}}
streams:
  - name: {MY_TABLE}
    mode: full_refresh_overwrite
""")
    c = Contender(
        "openfuse",
        "OpenFuse: openfuse run --full-refresh (source connector `mysql`, Arrow batches → COPY)",
        schema,
        lambda: reset_schema(pg, schema),
        None,
        cwd=workdir,
    )
    if not os.access(openfuse_bin, os.X_OK):
        c.unavailable = f"{openfuse_bin} not found"
        return c
    c.argv = [str(openfuse_bin), "run", str(pipeline), "--full-refresh"]
    c.version = openfuse_version(openfuse_bin)
    return c


def contender_sling(pg: PG, my: MySQL, workdir: Path, py: Path | None, versions: dict) -> Contender:
    schema = "bench_mysql_sling"
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
        "SRC_MYSQL": my.url(),
        "DST_PG": pg.url(DST_DB, sslmode="disable"),
        "SLING_HOME_DIR": str(home),
        "SLING_DISABLE_TELEMETRY": "true",
        "SLING_LOGGING": "NO_COLOR",
    }
    c.argv = [
        str(binary),
        "run",
        "--src-conn",
        "SRC_MYSQL",
        "--src-stream",
        f"{MY_DB}.{MY_TABLE}",
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


def contender_dlt(pg: PG, my: MySQL, workdir: Path, py: Path | None, versions: dict) -> Contender:
    schema = "bench_mysql_dlt"
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
    c.argv = [
        str(py),
        str(DLT_SCRIPT),
        "--src",
        my.url("mysql+pymysql"),  # SQLAlchemy reflects through PyMySQL; dlt hands mysql:// to ConnectorX
        "--dst",
        pg.url(DST_DB),
        "--schema",
        MY_DB,
        "--table",
        MY_TABLE,
        "--dataset",
        schema,
        "--stream",
        "--file-format",
        "csv",
    ]
    c.cwd = workdir
    c.version = f"dlt {versions.get('dlt', '?')}, connectorx {versions.get('connectorx', '?')}"
    return c


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def targets(results: list[Result]) -> list[list[str]]:
    by = {r.contender.name: r for r in results}

    def med(name: str) -> float | None:
        return by[name].median if name in by else None

    m = med("openfuse")
    rss = max(by["openfuse"].max_rss) if m is not None else None
    out = []
    for name, value, ok in [
        (
            f"≥ {TARGET_VS_SLING:g}× faster than Sling",
            med("sling") / m if m and med("sling") else None,
            lambda v: v >= TARGET_VS_SLING,
        ),
        (
            f"≥ {TARGET_VS_DLT:g}× faster than dlt",
            med("dlt") / m if m and med("dlt") else None,
            lambda v: v >= TARGET_VS_DLT,
        ),
        (f"peak RSS ≤ {TARGET_RSS_MB:g} MB", rss, lambda v: v <= TARGET_RSS_MB),
    ]:
        if value is None:
            out.append(["openfuse", name, "–", "n/a"])
        else:
            shown = f"{value:.0f} MB" if "RSS" in name else f"{value:.2f}×"
            out.append(["openfuse", name, shown, "met" if ok(value) else "NOT met"])
    return out


def cpu_seconds(log_dir: Path, name: str, runs: int) -> float | None:
    """Median user + system CPU seconds of a contender's runs (from `time -v`'s files in the log dir)."""
    values = []
    for rep in range(1, runs + 1):
        path = log_dir / f"{name}.{rep}.time"
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        values.append(
            sum(float(x.rsplit(":", 1)[1]) for x in lines if "User time" in x or "System time" in x)
        )
    return statistics.median(values) if values else None


def table(results: list[Result], rows_n: int, log_dir: Path) -> tuple[list[str], list[list[str]]]:
    """pg_to_pg.py's table plus the contender's CPU time: less disturbed than wall time by other work."""
    header, rows = table_rows(results, rows_n)
    cpu = [cpu_seconds(log_dir, r.contender.name, len(r.times)) if r.median else None for r in results]
    return [*header, "CPU s"], [[*row, fmt(c)] for row, c in zip(rows, cpu, strict=True)]


def results_section(
    rows_n: int, repeat: int, info: dict, my_version: str, size: str, results: list[Result], log_dir: Path
) -> str:
    header, rows = table(results, rows_n, log_dir)
    versions = [f"{r.contender.name}: {r.contender.version}" for r in results if r.contender.version]
    failures = [f"- **{r.contender.name} FAILED**: {r.error}" for r in results if r.error]
    unavailable = [
        f"- **{r.contender.name} not available**: {r.contender.unavailable}"
        for r in results
        if r.contender.argv is None
    ]
    parts = [
        f"## MySQL/MariaDB → PostgreSQL, full refresh, {rows_n:,} rows",
        "",
        f"- date: {info['date']} (repository commit {info['commit']})",
        f"- machine: {info['machine']}; load average (1/5/15 min) {info['load']}; the host is shared, "
        "other work on it is noise",
        f"- source: {my_version}, `{MY_DB}.{MY_TABLE}` ({size} InnoDB); destination: PostgreSQL "
        f"{info['postgres']}, `{DST_DB}`; both servers on 127.0.0.1",
        f"- {rows_n:,} rows, ~150 bytes/row; {repeat} runs per contender, round-robin; median reported",
        f"- versions: {'; '.join(versions) if versions else '–'}",
        "- contenders:",
        *[f"  - `{r.contender.name}`: {r.contender.label}" for r in results],
        "- peak RSS = largest single process of the contender's process tree (`/usr/bin/time -v`); "
        "tree RSS = sampled peak of the summed RSS of all its processes; CPU s = user + system time of the "
        "contender's processes (median; the database servers' work is not in it)",
        "",
        md_table(header, rows),
        "",
    ]
    if failures or unavailable:
        parts += failures + unavailable + [""]
    parts += [
        "Targets (reported, not asserted):",
        "",
        md_table(["variant", "target", "measured", "result"], targets(results)),
        "",
        f"Rerun: `python bench/mysql_to_pg.py --rows {rows_n}`",
        "",
    ]
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rerun: python bench/mysql_to_pg.py --rows 1000000",
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(CONTENDERS), help=f"of {','.join(CONTENDERS)}")
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--openfuse", type=Path, default=OPENFUSE_BIN)
    ap.add_argument("--host", default="127.0.0.1", help="PostgreSQL host")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--mysql-host", default="127.0.0.1")
    ap.add_argument("--mysql-port", type=int, default=3306)
    ap.add_argument("--mysql-user", default="root")
    args = ap.parse_args()

    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(selected) - set(CONTENDERS):
        ap.error(f"unknown contender(s); choose from {', '.join(CONTENDERS)}")
    if args.rows < 1 or args.repeat < 1:
        ap.error("--rows and --repeat must be positive")
    require_tools()
    pg = PG(args.host, args.port, args.user)
    my = MySQL(args.mysql_host, args.mysql_port, args.mysql_user)
    load_start = load_average()
    print(f"load average (1/5/15 min) at start: {load_start}")
    ensure_databases(pg)
    ensure_mysql_table(my, args.rows, args.regen)
    my_version = "MariaDB/MySQL " + my.query("SELECT VERSION()", db=None)
    size = my.query(
        "SELECT CONCAT(ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576), ' MB') FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = '{MY_DB}' AND TABLE_NAME = '{MY_TABLE}'"
    )

    py, versions = None, {}
    if {"sling", "dlt"} & set(selected):
        py = baselines_python()
        versions = baseline_versions(py)

    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"mysql_to_pg-{run_id}"
    with tempfile.TemporaryDirectory(prefix="openfuse_bench_") as tmp:
        workdir = Path(tmp)
        factories = {
            "raw": lambda: contender_raw(pg, my),
            "openfuse": lambda: contender_openfuse(pg, my, workdir, args.openfuse),
            "sling": lambda: contender_sling(pg, my, workdir, py, versions),
            "dlt": lambda: contender_dlt(pg, my, workdir, py, versions),
        }
        contenders = [factories[name]() for name in CONTENDERS if name in selected]
        warm_mysql(my)
        print(
            f"running {', '.join(c.name for c in contenders)}: {args.repeat} run(s) each, "
            f"{args.rows:,} rows; logs in {log_dir.relative_to(REPO_DIR)}/",
            flush=True,
        )
        results = run_benchmark(pg, contenders, args.rows, args.repeat, log_dir)

    header, rows = table(results, args.rows, log_dir)
    print_table(
        header,
        rows,
        f"MySQL/MariaDB → PostgreSQL, full refresh, {args.rows:,} rows (median of {args.repeat})",
    )
    for of, target, value, verdict in targets(results):
        print(f"  target {of:10s} {target:28s} {value:>9s}  {verdict}")
    load_end = load_average()
    print(f"load average (1/5/15 min) at the end: {load_end}")
    if not args.no_results:
        info = machine_info(pg)
        info["load"] = f"{load_start} at start, {load_end} at the end"
        write_results(
            RESULTS_MD, results_section(args.rows, args.repeat, info, my_version, size, results, log_dir)
        )
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
