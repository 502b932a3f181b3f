#!/usr/bin/env python3
"""What running a pipeline through Dagster costs on top of `openfuse run`.

Rerun (from the repository root, with the project's virtualenv - it needs OpenFuse, Dagster and
dagster-celery; PostgreSQL and Redis must be up):

    .venv/bin/python bench/dagster_overhead.py

Measures, in one benchmark run, median of --repeat (default 3) runs each:

1. The 1M-row stream `openfuse_bench_src.public.bench_orders` → PostgreSQL (full refresh, the
   COPY pass-through; generator shared with pg_to_pg.py through common.py):
   * `openfuse run PIPELINE --full-refresh` - the bare engine, a fresh process per run;
   * `dagster job execute -m openfuse_dagster.definitions -j <job>` with the in-process executor
     on the embedded (SQLite) instance - the same pipeline as a Dagster job, a fresh process;
   * the same command on the scaled instance (PostgreSQL storage) with the Celery executor and
     one `openfuse worker` (Redis broker): the step runs in the worker;
   * "warm": in one long-lived process, the engine's `run_pipeline` and the job's
     `execute_in_process` alternately (no interpreter start-up or imports in either), which is
     Dagster's own cost per run.
2. A 20-stream pipeline of small tables (`public.bench_small_01..20`, 50,000 rows each, made
   from bench_orders): the in-process job, and the Celery job with 1 and with 2 workers (one
   step process each).

Per-step overhead on Celery = (Celery wall time with 1 worker - in-process wall time) / steps:
both run the steps one at a time in the same kind of run, so the difference is the dispatch
through Redis, the worker's step set-up and the executor's polling tick (OPENFUSE_CELERY_POLL_SECONDS, 0.1 s;
dagster-celery's own default is 1 s). The event log gives
a second view: per step, time from "Submitting celery task" to STEP_SUCCESS minus the engine's
own duration.

Untimed around every run: the destination schema is dropped and the destination checkpointed
before; after, the row count must match (else the variant is FAILED, exit 1). Targets (reported,
never asserted): in-process Dagster adds ≤ 0.5 s per run and ≤ 10 % on the 1M-row stream;
Celery ≤ 1 s overhead per step; 20 streams with 2 workers ≤ 0.6 x the time with 1.
Writes the section "## Dagster overhead, PostgreSQL → PostgreSQL" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    DST_DB,
    LOG_DIR,
    OPENFUSE_BIN,
    PG,
    REPO_DIR,
    RESULTS_MD,
    SRC_DB,
    SRC_TABLE,
    checkpoint,
    cpu_busy,
    cpu_times,
    ensure_databases,
    ensure_source_table,
    fmt,
    load_average,
    machine_info,
    md_table,
    parse_openfuse_summary,
    print_table,
    require_tools,
    reset_schema,
    run_measured,
    warm_source_cache,
    write_results,
)

VENV_BIN = REPO_DIR / ".venv" / "bin"
LOCATION = "openfuse_dagster.definitions"
SMALL_TABLES = 20
SMALL_ROWS = 50_000
STORAGE_DB = "openfuse_bench_dagster"
SCHEMA_1M = "bench_dagster"
SCHEMA_20 = "bench_dagster20"
REGISTER = (
    "from openfuse_connectors.cli import app; from openfuse_dagster.cli import register\n"
    "if not any(c.name == 'worker' for c in app.registered_commands): register(app)\n"
    "app()"
)

TIMES = "\u00d7"  # the multiplication sign, for the tables
TARGET_RUN_S = 0.5
TARGET_RUN_PCT = 10.0
TARGET_STEP_S = 1.0
TARGET_2W = 0.6


# --------------------------------------------------------------------------------------------
# Data and pipelines
# --------------------------------------------------------------------------------------------


def ensure_small_tables(pg: PG) -> None:
    have = pg.query(
        SRC_DB,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'bench\\_small\\_%'",
    )
    if have == str(SMALL_TABLES) and pg.query(SRC_DB, "SELECT count(*) FROM public.bench_small_01") == str(
        SMALL_ROWS
    ):
        print(f"source: reusing {SMALL_TABLES} tables public.bench_small_NN")
        return
    print(f"source: creating {SMALL_TABLES} tables public.bench_small_NN of {SMALL_ROWS:,} rows", flush=True)
    sql = []
    for i in range(1, SMALL_TABLES + 1):
        t = f"public.bench_small_{i:02d}"
        sql.append(
            f"DROP TABLE IF EXISTS {t}; CREATE TABLE {t} AS SELECT * FROM {SRC_TABLE} "
            f"WHERE id > {(i - 1) * SMALL_ROWS} AND id <= {i * SMALL_ROWS}; ALTER TABLE {t} ADD PRIMARY KEY (id);"
        )
    pg.script(SRC_DB, "\n".join(sql) + "\nVACUUM (FREEZE, ANALYZE);")


def write_pipelines(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # Connection strings are ${VAR} references: the Dagster code location refuses literal secrets.
    head = """\
source:      {{connector: postgres, config: {{dsn: "${{BENCH_SRC_DSN}}"}}}}
destination: {{connector: postgres, config: {{dsn: "${{BENCH_DST_DSN}}", schema: {schema}}}}}
tags: {{retries: "0"}}
streams:
"""
    (folder / "bench_dagster_1m.yaml").write_text(
        "name: bench_dagster_1m\n"
        + head.format(schema=SCHEMA_1M)
        + f"  - {{name: {SRC_TABLE}, mode: full_refresh_overwrite}}\n"
    )
    streams = "".join(
        f"  - {{name: public.bench_small_{i:02d}, mode: full_refresh_overwrite}}\n"
        for i in range(1, SMALL_TABLES + 1)
    )
    (folder / "bench_dagster_20.yaml").write_text(
        "name: bench_dagster_20\n" + head.format(schema=SCHEMA_20) + streams
    )


# --------------------------------------------------------------------------------------------
# Inner modes, run with the project's python: read a run's events; the warm comparison
# --------------------------------------------------------------------------------------------


def inner_inspect(home: str) -> None:
    """Print the latest run of the instance at `home` as JSON: status, step timings, engine s."""
    from dagster import DagsterEventType

    from openfuse_dagster.instance import load_instance

    with load_instance(Path(home)) as inst:
        [run] = inst.get_runs(limit=1)
        steps: dict[str, dict[str, Any]] = {}
        out: dict[str, Any] = {"status": run.status.value, "steps": steps}
        for rec in inst.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None:
                continue
            s = steps.setdefault(ev.step_key, {}) if ev.step_key else None
            if ev.event_type is DagsterEventType.RUN_START:
                out["run_start"] = rec.timestamp
            elif ev.event_type in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
                out["run_end"] = rec.timestamp
            elif s is None:
                continue
            elif ev.event_type is DagsterEventType.ENGINE_EVENT and "Submitting celery task" in (
                rec.message or ""
            ):
                s["submitted"] = rec.timestamp
            elif ev.event_type is DagsterEventType.ENGINE_EVENT and ev.engine_event_data.metadata.get(
                "Celery worker"
            ):
                s["worker"] = str(ev.engine_event_data.metadata["Celery worker"].value)
                s["task_start"] = rec.timestamp
            elif ev.event_type is DagsterEventType.STEP_START:
                s["start"] = rec.timestamp
            elif ev.event_type is DagsterEventType.STEP_SUCCESS:
                s["success"] = rec.timestamp
            elif ev.event_type is DagsterEventType.ASSET_MATERIALIZATION:
                s["engine_s"] = ev.step_materialization_data.materialization.metadata[
                    "duration_seconds"
                ].value
        print(json.dumps(out))


def inner_warm(pipeline: str, home: str, repeat: int, dst: str) -> None:
    """Alternate the bare engine and the Dagster job in this one process; print JSON timings."""
    import psycopg

    from openfuse_connectors.engine import run_pipeline
    from openfuse_connectors.spec import load_pipeline
    from openfuse_dagster import build_pipeline_job, openfuse_resources
    from openfuse_dagster.instance import load_instance

    spec = load_pipeline(pipeline)
    job = build_pipeline_job(spec)
    resources = openfuse_resources(spec, allow_literal_secrets=True)

    def reset() -> None:
        with psycopg.connect(dst, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA_1M} CASCADE")
            c.execute("CHECKPOINT")

    times: dict[str, list[float]] = {"bare": [], "dagster": []}
    with load_instance(Path(home)) as instance:
        # One untimed round each: imports, first connections, the job's first plan.
        for first in (True, *([False] * repeat)):
            reset()
            t0 = time.perf_counter()
            [r] = run_pipeline(spec, full_refresh=True)
            t_bare = time.perf_counter() - t0
            assert r.ok and r.rows_written == 1_000_000, r
            reset()
            t0 = time.perf_counter()
            result = job.execute_in_process(resources=resources, instance=instance)
            t_dag = time.perf_counter() - t0
            assert result.success
            if not first:
                times["bare"].append(t_bare)
                times["dagster"].append(t_dag)
    print(json.dumps(times))


# --------------------------------------------------------------------------------------------
# The measured variants
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    label: str
    times: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    #: share of both CPUs busy during each run (everything on the machine: PostgreSQL included)
    busy: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None


def py() -> str:
    return str(VENV_BIN / "python")


def inspect_run(home: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [py(), str(Path(__file__).resolve()), "_inspect", str(home)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(
    v: Variant,
    argv: list[str],
    env: dict[str, str],
    reset: Any,
    check: Any,
    log_dir: Path,
    run: int,
    home: Path | None = None,
) -> None:
    if v.error:
        return
    reset()
    before = cpu_times()
    m = run_measured(argv, log_dir / f"{v.name}.{run}.log", env=env, cwd=log_dir)
    v.busy.append(cpu_busy(before, cpu_times()))
    if m.rc != 0:
        v.error = f"exit {m.rc}, see {m.log}"
        return
    problem = check()
    if problem:
        v.error = problem
        return
    v.times.append(m.seconds)
    if home is not None:
        v.runs.append(inspect_run(home, env))
    elif (summary := parse_openfuse_summary(m.log, SRC_TABLE)) is not None:
        v.runs.append({"steps": {"bare": {"engine_s": summary.seconds}}})
    print(f"  {v.name} run {run}: {m.seconds:.2f}s", flush=True)


def step_overheads(runs: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """From the event log of 1-worker Celery runs, medians over steps of

    * in the worker: task start -> STEP_SUCCESS, less the engine's own seconds (instance, plan,
      resources, events, checks);
    * between steps: previous STEP_SUCCESS -> next task start (ack, result, next message).
    """
    inside: list[float] = []
    gaps: list[float] = []
    for r in runs:
        steps = sorted(
            (s for s in r["steps"].values() if "task_start" in s and "success" in s),
            key=lambda s: s["task_start"],
        )
        inside += [s["success"] - s["task_start"] - s.get("engine_s", 0.0) for s in steps]
        gaps += [b["task_start"] - a["success"] for a, b in itertools.pairwise(steps)]
    return (
        statistics.median(inside) if inside else None,
        statistics.median(gaps) if gaps else None,
    )


def workers_used(runs: list[dict[str, Any]]) -> int:
    return len({s.get("worker") for r in runs for s in r["steps"].values() if s.get("worker")})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warm-repeat", type=int, default=5, help="rounds of the warm comparison")
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="broker (a DB of its own)")
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    require_tools()
    if not (VENV_BIN / "python").exists():
        sys.exit(f"{VENV_BIN / 'python'} not found: run `make install` first")

    from openfuse_dagster.instance import (
        dagster_process_env,
        ensure_embedded_dagster_home,
        prepare_dagster_home,
    )
    from openfuse_dagster.processes import Supervisor
    from openfuse_dagster.settings import Settings

    pg = PG(args.host, args.port, args.user)
    info = machine_info(pg)
    load_start = load_average()
    ensure_databases(pg)
    ensure_source_table(pg, args.rows, args.regen)
    ensure_small_tables(pg)
    warm_source_cache(pg)

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"dagster_overhead-{stamp}"
    pipelines = log_dir / "pipelines"
    write_pipelines(pipelines)
    base_env = {
        **os.environ,
        "BENCH_SRC_DSN": pg.url(SRC_DB),
        "BENCH_DST_DSN": pg.url(DST_DB),
        "OPENFUSE_PIPELINES_DIR": str(pipelines),
    }
    base_env = {k: v for k, v in base_env.items() if not k.startswith("DAGSTER_")}

    # Embedded instance (SQLite) for the in-process runs.
    emb = Settings(
        deployment="embedded", home=log_dir / "embedded", pipelines_dir=pipelines, executor="in_process"
    )
    emb_home = ensure_embedded_dagster_home(emb.resolved_home)
    emb_env = dagster_process_env(emb, base_env)

    # Scaled instance: PostgreSQL storage (fresh database), Celery on Redis with a queue of its own.
    pg.query("postgres", f'DROP DATABASE IF EXISTS "{STORAGE_DB}" WITH (FORCE)')
    pg.query("postgres", f'CREATE DATABASE "{STORAGE_DB}"')
    queue = f"bench_{uuid.uuid4().hex[:8]}"
    scaled = Settings(
        deployment="scaled",
        home=log_dir / "scaled",
        pipelines_dir=pipelines,
        dagster_pg_url=pg.url(STORAGE_DB),  # type: ignore[arg-type]
        celery_broker=args.redis,  # type: ignore[arg-type]
        celery_queue=queue,
        worker_concurrency=1,
    )
    sc_home = prepare_dagster_home(scaled)
    sc_env = dagster_process_env(scaled, base_env)

    def job_argv(job: str) -> list[str]:
        return [str(VENV_BIN / "dagster"), "job", "execute", "-m", LOCATION, "-j", job]

    def rows_check(schema: str, tables: list[str], rows: int) -> Any:
        def check() -> str:
            for t in tables:
                n = pg.query(DST_DB, f"SELECT count(*) FROM {schema}.{t}")
                if n != str(rows):
                    return f"{schema}.{t} holds {n} rows, expected {rows}"
            return ""

        return check

    def reset(schema: str) -> Any:
        def go() -> None:
            reset_schema(pg, schema)
            checkpoint(pg)

        return go

    big = ["bench_orders"]
    small = [f"bench_small_{i:02d}" for i in range(1, SMALL_TABLES + 1)]
    v_bare = Variant("bare", "`openfuse run PIPELINE --full-refresh`")
    v_inproc = Variant("dagster_in_process", "`dagster job execute`, in-process executor, SQLite instance")
    v_celery = Variant(
        "dagster_celery", "`dagster job execute`, Celery executor, 1 worker, PostgreSQL instance"
    )
    v20_inproc = Variant("20_in_process", "20 streams, `dagster job execute`, in-process executor")
    v20_c1 = Variant("20_celery_1w", "20 streams, Celery executor, 1 worker")
    v20_c2 = Variant("20_celery_2w", "20 streams, Celery executor, 2 workers")

    sup = Supervisor(env=sc_env, cwd=log_dir, grace_seconds=15)

    def start_worker(name: str) -> None:
        sup.start(
            name,
            [py(), "-c", REGISTER, "worker", "--name", name, "--", "--without-mingle", "--without-gossip"],
            log_path=log_dir / f"{name}.log",
        )
        deadline = time.monotonic() + 120
        while "ready." not in (log_dir / f"{name}.log").read_text(errors="replace"):
            if time.monotonic() > deadline or sup.children[-1].proc.poll() is not None:
                raise SystemExit(f"worker {name} did not start; see {log_dir / f'{name}.log'}")
            time.sleep(0.5)

    warm: dict[str, list[float]] = {}
    try:
        print("\n1M-row stream: bare vs Dagster in-process vs Dagster on Celery (1 worker)", flush=True)
        start_worker("bw1")
        for i in range(1, args.repeat + 1):  # round-robin, so background load hits all alike
            measure(
                v_bare,
                [str(OPENFUSE_BIN), "run", str(pipelines / "bench_dagster_1m.yaml"), "--full-refresh"],
                base_env,
                reset(SCHEMA_1M),
                rows_check(SCHEMA_1M, big, args.rows),
                log_dir,
                i,
            )
            measure(
                v_inproc,
                job_argv("bench_dagster_1m"),
                emb_env,
                reset(SCHEMA_1M),
                rows_check(SCHEMA_1M, big, args.rows),
                log_dir,
                i,
                emb_home,
            )
            measure(
                v_celery,
                job_argv("bench_dagster_1m"),
                sc_env,
                reset(SCHEMA_1M),
                rows_check(SCHEMA_1M, big, args.rows),
                log_dir,
                i,
                sc_home,
            )
        print("\nwarm: engine vs execute_in_process in one process", flush=True)
        out = subprocess.run(
            [
                py(),
                str(Path(__file__).resolve()),
                "_warm",
                str(pipelines / "bench_dagster_1m.yaml"),
                str(emb_home),
                str(args.warm_repeat),
                pg.url(DST_DB),
            ],
            env=emb_env,
            capture_output=True,
            text=True,
        )
        if out.returncode == 0:
            warm = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            (log_dir / "warm.log").write_text(out.stdout + out.stderr)
            print(f"  warm comparison failed; see {log_dir / 'warm.log'}")

        print("\n20 streams: in-process vs Celery with 1 and 2 workers", flush=True)
        for i in range(1, args.repeat + 1):
            measure(
                v20_inproc,
                job_argv("bench_dagster_20"),
                emb_env,
                reset(SCHEMA_20),
                rows_check(SCHEMA_20, small, SMALL_ROWS),
                log_dir,
                i,
                emb_home,
            )
            measure(
                v20_c1,
                job_argv("bench_dagster_20"),
                sc_env,
                reset(SCHEMA_20),
                rows_check(SCHEMA_20, small, SMALL_ROWS),
                log_dir,
                i,
                sc_home,
            )
        start_worker("bw2")
        for i in range(1, args.repeat + 1):
            measure(
                v20_c2,
                job_argv("bench_dagster_20"),
                sc_env,
                reset(SCHEMA_20),
                rows_check(SCHEMA_20, small, SMALL_ROWS),
                log_dir,
                i,
                sc_home,
            )
    finally:
        sup.stop()
        import redis

        broker = redis.Redis.from_url(args.redis)
        for key in broker.scan_iter(f"*{queue}*"):  # the queue and its bindings
            broker.delete(key)
        for schema in (SCHEMA_1M, SCHEMA_20):
            reset_schema(pg, schema)
        pg.query("postgres", f'DROP DATABASE IF EXISTS "{STORAGE_DB}" WITH (FORCE)')
    load_end = load_average()
    (log_dir / "runs.json").write_text(
        json.dumps(
            {
                v.name: {"times": v.times, "runs": v.runs, "error": v.error}
                for v in (v_bare, v_inproc, v_celery, v20_inproc, v20_c1, v20_c2)
            }
            | {"warm": warm},
            indent=1,
        )
    )

    # ---------------------------------------------------------------------------- report
    variants = [v_bare, v_inproc, v_celery, v20_inproc, v20_c1, v20_c2]
    bare = v_bare.median
    rows = []
    for v in variants:
        engine = [s["engine_s"] for r in v.runs for s in r["steps"].values() if "engine_s" in s]
        big_one = v in (v_bare, v_inproc, v_celery)
        rows.append(
            [
                v.name,
                "FAILED: " + v.error if v.error else "ok",
                fmt(v.median),
                fmt(min(v.times) if v.times else None),
                fmt(max(v.times) if v.times else None),
                fmt(v.median / bare, ".2f") + TIMES if big_one and v.median and bare else "",
                fmt(v.median - bare, "+.2f") if big_one and v.median and bare else "",
                fmt(statistics.median(engine) if engine else None)
                if big_one
                else fmt(sum(engine) / len(v.runs) if engine else None),
                fmt(100 * statistics.median(v.busy) if v.busy else None, ".0f") + " %",
            ]
        )
    header = [
        "variant", "status", "median s", "min s", "max s", f"{TIMES} bare", "overhead s", "engine s",
        "CPU busy (2 cores)",
    ]  # fmt: skip
    print_table(header, rows, "Dagster overhead")

    warm_bare = statistics.median(warm["bare"]) if warm else None
    warm_dag = statistics.median(warm["dagster"]) if warm else None
    warm_over = warm_dag - warm_bare if warm_bare is not None and warm_dag is not None else None
    steps = SMALL_TABLES
    per_step = (v20_c1.median - v20_inproc.median) / steps if v20_c1.median and v20_inproc.median else None
    per_step_1m = v_celery.median - v_inproc.median if v_celery.median and v_inproc.median else None
    inside, gap = step_overheads(v20_c1.runs)
    per_step_events = inside + gap if inside is not None and gap is not None else None
    ratio_2w = v20_c2.median / v20_c1.median if v20_c2.median and v20_c1.median else None
    fresh_over = v_inproc.median - bare if v_inproc.median and bare else None

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    targets = [
        [
            "in-process Dagster, per run (warm: same process)",
            f"≤ {TARGET_RUN_S} s",
            fmt(warm_over, "+.2f") + " s",
            met(warm_over <= TARGET_RUN_S if warm_over is not None else None),
        ],
        [
            "in-process Dagster, 1M-row stream (warm)",
            f"≤ {TARGET_RUN_PCT:.0f} %",
            fmt(100 * warm_over / warm_bare if warm_over is not None and warm_bare else None, "+.1f") + " %",
            met(
                100 * warm_over / warm_bare <= TARGET_RUN_PCT if warm_over is not None and warm_bare else None
            ),
        ],
        [
            "in-process Dagster, per run (fresh `dagster job execute` process vs `openfuse run`)",
            f"≤ {TARGET_RUN_S} s",
            fmt(fresh_over, "+.2f") + " s",
            met(fresh_over <= TARGET_RUN_S if fresh_over is not None else None),
        ],
        [
            "in-process Dagster, 1M-row stream (fresh process)",
            f"≤ {TARGET_RUN_PCT:.0f} %",
            fmt(100 * fresh_over / bare if fresh_over is not None and bare else None, "+.1f") + " %",
            met(100 * fresh_over / bare <= TARGET_RUN_PCT if fresh_over is not None and bare else None),
        ],
        [
            "Celery, overhead per step (20 streams, 1 worker - in-process, / 20)",
            f"≤ {TARGET_STEP_S} s",
            fmt(per_step, "+.2f") + " s",
            met(per_step <= TARGET_STEP_S if per_step is not None else None),
        ],
        [
            f"Celery, overhead per step (event log, 1 worker: {fmt(inside)} s in the worker outside the "
            f"engine + {fmt(gap)} s between steps)",
            f"≤ {TARGET_STEP_S} s",
            fmt(per_step_events, "+.2f") + " s",
            met(per_step_events <= TARGET_STEP_S if per_step_events is not None else None),
        ],
        [
            "Celery, 1M-row stream (1 step): Celery - in-process",
            f"≤ {TARGET_STEP_S} s",
            fmt(per_step_1m, "+.2f") + " s",
            met(per_step_1m <= TARGET_STEP_S if per_step_1m is not None else None),
        ],
        [
            "20 streams, 2 workers / 1 worker",
            f"≤ {TARGET_2W}{TIMES}",
            fmt(ratio_2w, ".2f") + TIMES,
            met(ratio_2w <= TARGET_2W if ratio_2w is not None else None),
        ],
    ]
    print_table(["measure", "target", "measured", "result"], targets, "Targets (reported, not asserted)")

    heading = "## Dagster overhead, PostgreSQL → PostgreSQL"
    lines = [
        heading,
        "",
        f"- date: {info['date']} (repository commit {info['commit']})",
        f"- machine: {info['machine']}; load average (1/5/15 min) {load_start} at start, {load_end} at the end",
        f"- PostgreSQL {info['postgres']} (source, destination and Dagster's storage on the same server, "
        f"{args.host}); Redis broker/backend {args.redis.rsplit('@', 1)[-1]}, queue of its own",
        f"- {args.repeat} runs per variant, round-robin, median reported; a fresh process per run unless "
        "noted; before every run (untimed) the destination schema is dropped and the destination "
        "checkpointed; after it the row count must match",
        f"- 1M-row stream: `{SRC_TABLE}` ({args.rows:,} rows, generator of `pg_to_pg.py`), "
        "`full_refresh_overwrite` (COPY pass-through); the Dagster job also runs its asset checks "
        "(row-count parity = one `count(*)` of the loaded table)",
        f"- 20 streams: `public.bench_small_01..20`, {SMALL_ROWS:,} rows each, one op (= one step) each",
        "- Celery: `openfuse worker` processes (one step process each, `--without-mingle --without-gossip`), "
        "the run in the `dagster job execute` process (no queue, no daemon: the run coordinator's "
        "latency is not part of these figures)",
        "- engine s = the sync's own duration as the engine reports it (`openfuse run`'s summary, "
        "the Dagster runs' materialization metadata); "
        "for the 20-stream rows: the sum over the streams of one run",
        "- CPU busy = the share of both CPUs busy during the run (the whole machine: PostgreSQL, Redis, "
        "the workers, the run process); a run already near 100 % cannot get faster with a second worker",
        "",
        md_table(header, rows),
        "",
    ]
    if warm:
        lines += [
            "Warm (one long-lived process, no interpreter start-up or imports; alternating, "
            f"median of {args.warm_repeat} after one untimed round each):",
            "",
            md_table(
                ["variant", "median s", "runs s"],
                [
                    ["engine `run_pipeline`", fmt(warm_bare), ", ".join(fmt(x) for x in warm["bare"])],
                    [
                        "Dagster `job.execute_in_process` (SQLite instance)",
                        fmt(warm_dag),
                        ", ".join(fmt(x) for x in warm["dagster"]),
                    ],
                ],
            ),
            "",
        ]
    lines += [
        f"Celery workers that ran steps (from the event log): 1-worker runs {workers_used(v20_c1.runs)}, "
        f"2-worker runs {workers_used(v20_c2.runs)}.",
        "",
        "Targets (reported, not asserted):",
        "",
        md_table(["measure", "target", "measured", "result"], targets),
        "",
        "Rerun: `.venv/bin/python bench/dagster_overhead.py`",
        "",
    ]
    if not args.no_results:
        write_results(RESULTS_MD, "\n".join(lines))
        print(f"\nwrote section {heading!r} of {RESULTS_MD}")
    print(f"logs: {log_dir}")
    return 1 if any(v.error for v in variants) else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_inspect":
        inner_inspect(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "_warm":
        inner_warm(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(main())
