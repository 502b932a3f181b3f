"""The scaled deployment for real: PostgreSQL storage, Redis, two Celery workers, the daemon and
the webserver, all started by this module and all stopped at its end.

One stack serves the module (starting it is most of the cost): runs are launched through the
webserver's GraphQL API (plain HTTP POSTs) or Dagster's own backfill command, queued by the
QueuedRunCoordinator, launched by the daemon, and their steps run on the workers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from proc_support import free_port
from stack_helpers import graphql, http_ok, location_loaded, wait_for
from support import pg_exec, pg_rows

from openfuse_dagster.instance import dagster_process_env, load_instance, prepare_dagster_home
from openfuse_dagster.processes import Supervisor, descendants, group_alive
from openfuse_dagster.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
REDIS = os.environ.get("OPENFUSE_TEST_REDIS", "redis://127.0.0.1:6379/11")
LOCATION = "openfuse_dagster.definitions"
REPOSITORY = "__repository__"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
OPENFUSE = (
    "from openfuse_connectors.cli import app; from openfuse_dagster.cli import register\n"
    "if not any(c.name == 'worker' for c in app.registered_commands): register(app)\n"
    "app()"
)

PIPELINES = {
    "dist.yaml": """
        name: dist
        source: {connector: postgres, config: {dsn: "${OF_DIST_SRC}"}}
        destination: {connector: postgres, config: {dsn: "${OF_DIST_DST}", schema: dist}}
        schedule: "0 3 * * *"
        tags: {retries: "0"}
        streams:
          - {name: public.t1}
          - {name: public.t2}
          - {name: public.t3, mode: incremental_append, cursor_field: ts}
          - {name: public.t4, mode: incremental_dedupe, cursor_field: ts, primary_key: [id]}
    """,
    "fault.yaml": """
        name: fault
        source: {connector: postgres, config: {dsn: "${OF_DIST_SRC}"}}
        destination: {connector: postgres, config: {dsn: "${OF_DIST_DST}", schema: fault}}
        batch_size: 500
        tags: {retries: "0"}
        streams:
          - name: public.f
            mode: incremental_append
            cursor_field: ts
            transforms: [{type: python, callable: "stack_helpers:hold"}]
    """,
    "parts.yaml": """
        name: parts
        source: {connector: postgres, config: {dsn: "${OF_DIST_SRC}"}}
        destination: {connector: postgres, config: {dsn: "${OF_DIST_DST}", schema: parts}}
        schedule: "0 * * * *"
        tags: {partition: daily, partition_start: "2024-01-01", partition_end: "2024-01-08",
               retries: "1", retry_delay_seconds: "0"}
        streams:
          - name: public.events
            mode: incremental_append
            cursor_field: ts
            transforms: [{type: python, callable: "stack_helpers:pause"}]
    """,
}


@dataclass
class Stack:
    url: str
    home: Path
    env: dict[str, str]
    src: str
    dst: str
    tmp: Path
    sup: Supervisor

    @contextmanager
    def instance(self) -> Iterator[DagsterInstance]:
        with load_instance(self.home) as inst:
            yield inst

    def launch(self, job: str, tags: dict[str, str] | None = None) -> str:
        data = graphql(
            self.url,
            """mutation Launch($params: ExecutionParams!) {
                 launchRun(executionParams: $params) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message }
                   ... on RunConfigValidationInvalid { errors { message } }
                 }
               }""",
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": REPOSITORY,
                        "jobName": job,
                    },
                    "runConfigData": {},
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
                }
            },
        )
        out = data["launchRun"]
        assert out["__typename"] == "LaunchRunSuccess", out
        return str(out["run"]["runId"])

    def status(self, run_id: str) -> str:
        data = graphql(
            self.url,
            "query Q($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }",
            {"id": run_id},
        )
        return str(data["runOrError"]["status"])

    def wait_run(self, run_id: str, timeout: float = 120) -> str:
        return wait_for(
            f"run {run_id} to finish", lambda: s if (s := self.status(run_id)) in TERMINAL else None, timeout
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("*.log"))
        )


def _create_db(admin: str) -> str:
    name = f"of_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin.rpartition('/')[0]}/{name}"


def _drop_db(admin: str, url: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def _seed(src: str) -> None:
    ts = "'2024-01-01'::timestamptz + g * interval '1 minute'"
    pg_exec(
        src,
        *[
            f"CREATE TABLE t{i} AS SELECT g AS id, 'row ' || g AS v, {ts} AS ts FROM generate_series(1, {1000 * i}) g"
            for i in range(1, 5)
        ],
        "ALTER TABLE t4 ADD PRIMARY KEY (id)",
        f"CREATE TABLE f AS SELECT g AS id, md5(g::text) AS v, {ts} AS ts FROM generate_series(1, 5000) g",
        # 100 events a day from 2024-01-01 to 2024-01-07 (one every 14.4 minutes).
        "CREATE TABLE events AS SELECT g AS id, '2024-01-01'::timestamptz + (g - 1) * interval '864 seconds' AS ts, "
        "'e' || g AS v FROM generate_series(1, 700) g",
    )


@pytest.fixture(scope="module")
def stack(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import redis

    r = redis.Redis.from_url(REDIS)
    try:
        r.ping()
    except redis.ConnectionError as e:
        pytest.fail(f"Redis at {REDIS} is not reachable ({e}); run `make services`", pytrace=False)
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "pipelines").mkdir()
    for name, text in PIPELINES.items():
        (tmp / "pipelines" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp / "hold").mkdir()
    storage, src, dst = _create_db(pg_server), _create_db(pg_server), _create_db(pg_server)
    queue = f"of_test_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        deployment="scaled",
        home=tmp / "openfuse",
        pipelines_dir=tmp / "pipelines",
        dagster_pg_url=storage,  # type: ignore[arg-type]
        celery_broker=REDIS,  # type: ignore[arg-type]
        celery_queue=queue,
        worker_concurrency=1,
        dequeue_interval_seconds=1,
        run_retries=1,
        webserver_port=free_port(),
    )
    env = dagster_process_env(settings)
    env.update(
        {
            "OF_DIST_SRC": src,
            "OF_DIST_DST": dst,
            "OF_HOLD_DIR": str(tmp / "hold"),
            # Partition steps last 3 s: long enough to overlap however staggered their runs start.
            "OF_PAUSE_SECONDS": "3",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }
    )
    mp = pytest.MonkeyPatch()
    sup = Supervisor(env=env, cwd=tmp, grace_seconds=10, say=print)
    try:
        for k in ("DAGSTER_HOME", *[k for k in env if k.startswith("OPENFUSE_DAGSTER_PG_")]):
            mp.setenv(k, env[k])
        home = prepare_dagster_home(settings)
        _seed(src)
        with load_instance(home):
            pass  # creates the storage tables once, before four processes race to
        loc = ["-m", LOCATION]
        url = f"http://127.0.0.1:{settings.webserver_port}"
        sup.start(
            "webserver",
            [str(BIN / "dagster-webserver"), *loc, "-h", "127.0.0.1", "-p", str(settings.webserver_port)],
            log_path=tmp / "webserver.log",
        )
        sup.start("daemon", [str(BIN / "dagster-daemon"), "run", *loc], log_path=tmp / "daemon.log")
        for w in ("w1", "w2"):
            # `openfuse worker`, as the entry point registers it (the settings come from env).
            argv = [
                sys.executable,
                "-c",
                OPENFUSE,
                "worker",
                "--name",
                w,
                "--",
                "--without-mingle",
                "--without-gossip",
            ]
            sup.start(w, argv, log_path=tmp / f"{w}.log")
        s = Stack(url, home, env, src, dst, tmp, sup)

        def up(check: Any) -> Any:
            ended = [c.name for c in sup.children if c.proc.poll() is not None]
            assert not ended, f"{ended} exited"
            return check()

        try:
            wait_for("the webserver", lambda: up(lambda: http_ok(f"{url}/server_info")), 120)
            wait_for("the code location", lambda: up(lambda: location_loaded(url)), 120)
            for w in ("w1", "w2"):
                wait_for(
                    f"worker {w}", lambda w=w: up(lambda: "ready." in (tmp / f"{w}.log").read_text()), 120
                )
            with s.instance() as inst:
                wait_for("the daemon's heartbeat", lambda: up(inst.get_daemon_heartbeats), 120)
        except AssertionError:
            raise AssertionError(s.logs()) from None
        yield s
    finally:
        children = list(sup.children)
        tree = {p for c in children for p in descendants(c.pid)}  # code servers, run workers, pools
        sup.stop()
        mp.undo()
        assert not [c.name for c in children if group_alive(c.pid)], "processes survived the stack"
        assert not [p for p in tree if _alive(p)], "descendants survived the stack"
        for k in r.scan_iter(f"*{queue}*"):
            r.delete(k)
        for url in (storage, src, dst):
            _drop_db(pg_server, url)


def _events(inst: DagsterInstance, run_id: str) -> list[Any]:
    return [e for e in inst.all_logs(run_id) if e.dagster_event is not None]


def test_webserver_lists_the_pipelines_jobs_assets_schedules_and_sensors(stack: Stack) -> None:
    data = graphql(
        stack.url,
        """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes {
               name location { name }
               jobs { name isJob }
               schedules { name cronSchedule }
               sensors { name }
               assetNodes { assetKey { path } partitionDefinition { description } }
             } } } }""",
    )
    [repo] = data["repositoriesOrError"]["nodes"]
    assert (repo["name"], repo["location"]["name"]) == (REPOSITORY, LOCATION)
    jobs = {j["name"] for j in repo["jobs"]}
    assert {"dist", "fault", "parts"} <= jobs
    assert {(s["name"], s["cronSchedule"]) for s in repo["schedules"]} == {
        ("dist_schedule", "0 3 * * *"),
        ("parts_schedule", "0 * * * *"),
    }
    assets = {"/".join(a["assetKey"]["path"]): a["partitionDefinition"] for a in repo["assetNodes"]}
    assert {"postgres/dist/t1", "postgres/dist/t4", "postgres/fault/f", "postgres/parts/events"} <= set(
        assets
    )
    assert assets["postgres/dist/t1"] is None
    assert "Daily" in assets["postgres/parts/events"]["description"]
    # The scheduled pipelines' tables have freshness checks, run by one sensor.
    assert "openfuse_freshness_checks" in {s["name"] for s in repo["sensors"]}


def test_four_streams_run_on_both_celery_workers_through_the_queue_and_daemon(stack: Stack) -> None:
    run_id = stack.launch("dist")
    assert stack.wait_run(run_id) == "SUCCESS", stack.logs()
    with stack.instance() as inst:
        run = inst.get_run_by_id(run_id)
        assert run is not None and run.status is DagsterRunStatus.SUCCESS
        events = _events(inst, run_id)
        # dagster-celery records the worker that ran each step in an engine event.
        workers = {
            str(e.dagster_event.engine_event_data.metadata["Celery worker"].value): e.step_key
            for e in events
            if e.dagster_event.event_type is DagsterEventType.ENGINE_EVENT
            and "Celery worker" in (e.dagster_event.engine_event_data.metadata or {})
        }
        assert {w.split("@")[0] for w in workers} == {"w1", "w2"}
        starts = {
            e.step_key: e.dagster_event.pid
            for e in events
            if e.dagster_event.event_type is DagsterEventType.STEP_START
        }
        assert set(starts) == {"dist__t1", "dist__t2", "dist__t3", "dist__t4"}
        run_pid = next(
            e.dagster_event.pid for e in events if e.dagster_event.event_type is DagsterEventType.RUN_START
        )
        assert len(set(starts.values())) == 2 and run_pid not in starts.values()
    for i in range(1, 5):
        q = "SELECT id, v, ts FROM {} ORDER BY id"
        assert pg_rows(stack.dst, q.format(f"dist.t{i}")) == pg_rows(stack.src, q.format(f"t{i}")), i


def test_a_step_killed_mid_load_fails_the_run_and_the_automatic_retry_loads_exactly_the_source(
    stack: Stack,
) -> None:
    hold = stack.tmp / "hold"
    (hold / "hold").touch()
    run_id = stack.launch("fault")
    pid = int(wait_for("the step to reach the held batch", lambda: _read(hold / "reached"), 90))
    with stack.instance() as inst:
        [start] = [
            e for e in _events(inst, run_id) if e.dagster_event.event_type is DagsterEventType.STEP_START
        ]
        assert start.dagster_event.pid == pid  # the Celery pool process running the step
    os.kill(pid, signal.SIGKILL)
    (hold / "hold").unlink()
    assert stack.wait_run(run_id) == "FAILURE"
    with stack.instance() as inst:
        text = " ".join(str(e.dagster_event.event_specific_data) for e in _events(inst, run_id))
        assert "WorkerLostError" in text or "exited prematurely" in text
        assert not [
            e for e in _events(inst, run_id) if e.dagster_event.event_type is DagsterEventType.STEP_FAILURE
        ]
        # The daemon re-executes the run from the killed step (run_retries in dagster.yaml).
        retry = wait_for(
            "the automatic retry",
            lambda: next(iter(inst.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id}))), None),
            60,
        )
    assert stack.wait_run(retry.run_id) == "SUCCESS", stack.logs()
    q = "SELECT id, v, ts FROM {} ORDER BY id, ts"
    assert pg_rows(stack.dst, q.format("fault.f")) == pg_rows(stack.src, q.format("f"))
    assert pg_rows(stack.dst, "SELECT count(*), count(DISTINCT id) FROM fault.f") == [(5000, 5000)]


def test_a_backfill_of_three_partitions_runs_them_in_parallel_each_loading_its_range(stack: Stack) -> None:
    days = ["2024-01-02", "2024-01-03", "2024-01-05"]
    out = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "backfill",
            "-m",
            LOCATION,
            "-j",
            "parts",
            "--noprompt",
            "--partitions",
            ",".join(days),
        ],
        env=stack.env,
        cwd=stack.tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    backfill_id = re.search(r"Launched backfill job `(\w+)`", out.stdout)
    assert backfill_id, out.stdout
    with stack.instance() as inst:
        runs = inst.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id.group(1)}))
        assert sorted(r.tags["dagster/partition"] for r in runs) == days
        assert {r.tags["openfuse/lock"] for r in runs} == {f"parts@{d}" for d in days}
        for r in runs:
            assert stack.wait_run(r.run_id) == "SUCCESS", stack.logs()
        spans = []
        for r in runs:
            events = _events(inst, r.run_id)
            t = {e.dagster_event.event_type: e.timestamp for e in events}
            spans.append((t[DagsterEventType.STEP_START], t[DagsterEventType.STEP_SUCCESS]))
            [mat] = [
                e for e in events if e.dagster_event.event_type is DagsterEventType.ASSET_MATERIALIZATION
            ]
            m = mat.dagster_event.step_materialization_data.materialization
            day = r.tags["dagster/partition"]
            assert m.partition == day
            assert m.metadata["rows_read"].value == m.metadata["rows_written"].value == 100
            assert m.metadata["partition_start"].value.startswith(day)
    spans.sort()
    assert any(a[1] > b[0] for a, b in itertools.pairwise(spans)), spans  # some ran at once
    loaded = pg_rows(stack.dst, "SELECT id, ts FROM parts.events ORDER BY id")
    expected = pg_rows(
        stack.src,
        "SELECT id, ts FROM events WHERE ts >= '2024-01-02' AND ts < '2024-01-04' "
        "OR ts >= '2024-01-05' AND ts < '2024-01-06' ORDER BY id",
    )
    assert len(loaded) == 300 and loaded == expected
    states = pg_rows(
        stack.dst, "SELECT stream FROM parts._openfuse_state WHERE pipeline = 'parts' ORDER BY 1"
    )
    assert states == [(f"public.events#{d}",) for d in days]
    assert all(isinstance(ts, dt.datetime) for _, ts in loaded)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _read(p: Path) -> str | None:
    return p.read_text() if p.exists() and p.read_text() else None
