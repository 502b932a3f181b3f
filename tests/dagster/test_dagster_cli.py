"""`openfuse dev` / `openfuse worker` and the settings behind them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
import typer
import yaml
from proc_support import free_port
from stack_helpers import graphql, wait_for
from typer.testing import CliRunner

from openfuse_connectors import ConfigError
from openfuse_dagster.cli import register
from openfuse_dagster.executors import build_executor, celery_executor_config, write_worker_config
from openfuse_dagster.instance import dagster_process_env, prepare_dagster_home
from openfuse_dagster.processes import descendants, group_alive
from openfuse_dagster.settings import Settings

PIPELINE = """
name: hello
source: {connector: postgres, config: {dsn: "${OF_CLI_DSN}"}}
destination: {connector: postgres, config: {dsn: "${OF_CLI_DSN}", schema: landing}}
schedule: "0 6 * * *"
streams: [{name: public.things}]
"""


def test_importing_the_cli_does_not_import_dagster() -> None:
    # `openfuse run` loads the command plugins on every start: they must not drag Dagster in.
    code = (
        "import sys, openfuse_dagster, openfuse_dagster.cli, openfuse_connectors.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_celery')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_register_adds_dev_and_worker_and_worker_needs_celery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """A host app, like openfuse_connectors.cli.app."""

    runner = CliRunner()
    out = runner.invoke(app, ["--help"])
    assert "dev" in out.output and "worker" in out.output
    monkeypatch.setenv("OPENFUSE_HOME", str(tmp_path))
    monkeypatch.delenv("OPENFUSE_DEPLOYMENT", raising=False)
    monkeypatch.delenv("OPENFUSE_EXECUTOR", raising=False)
    refused = runner.invoke(app, ["worker"])
    assert refused.exit_code == 2
    assert "OPENFUSE_DEPLOYMENT=scaled" in refused.output


def test_one_settings_object_selects_instance_executor_and_celery_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in list(os.environ):
        if k.startswith("OPENFUSE_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("OPENFUSE_HOME", str(tmp_path / "home"))
    embedded = Settings()
    assert embedded.executor_name == "in_process"
    assert build_executor(embedded).name == "in_process"
    assert prepare_dagster_home(embedded) == tmp_path / "home" / "dagster"
    assert "sqlite" in (tmp_path / "home" / "dagster" / "dagster.yaml").read_text()

    secret_broker = "redis://:hunter2@redis.internal:6379/3"
    monkeypatch.setenv("OPENFUSE_DEPLOYMENT", "scaled")
    monkeypatch.setenv("OPENFUSE_CELERY_BROKER", secret_broker)
    monkeypatch.setenv("OPENFUSE_DAGSTER_PG_URL", "postgresql://dagster:pw@db:5432/dagster")
    monkeypatch.setenv("OPENFUSE_RUN_RETRIES", "3")
    scaled = Settings()
    assert scaled.executor_name == "celery"
    from dagster_celery import core_execution_loop

    executor = build_executor(scaled)
    assert executor.name == "openfuse_celery"
    # The run polls its steps' results every 0.1 s (dagster-celery's 1 s loses up to a second
    # after each step that others wait for, and after the last).
    assert core_execution_loop.TICK_SECONDS == scaled.celery_poll_seconds == 0.1
    # Dagster stores an executor's config with each run: only the variable's name goes there.
    config = celery_executor_config(scaled)
    assert config["broker"] == config["backend"] == {"env": "OPENFUSE_CELERY_BROKER"}
    assert config["config_source"]["task_default_queue"] == "openfuse"
    assert config["config_source"]["task_acks_late"] is True
    worker_yaml = write_worker_config(scaled, tmp_path / "worker.yaml").read_text()
    assert "hunter2" not in worker_yaml and "hunter2" not in str(config)

    home = prepare_dagster_home(scaled)
    assert home == tmp_path / "home" / "dagster-scaled"
    instance_yaml = yaml.safe_load((home / "dagster.yaml").read_text())
    assert "pw" not in (home / "dagster.yaml").read_text()
    assert instance_yaml["storage"]["postgres"]["postgres_db"]["hostname"] == {
        "env": "OPENFUSE_DAGSTER_PG_HOST"
    }
    assert instance_yaml["run_retries"] == {
        "enabled": True,
        "max_retries": 3,
        "retry_on_asset_or_op_failure": False,
    }
    coordinator = instance_yaml["run_coordinator"]["config"]
    assert coordinator["tag_concurrency_limits"][0]["key"] == "openfuse/lock"
    env = dagster_process_env(scaled, base={"PATH": "/usr/bin"})
    assert env["DAGSTER_HOME"] == str(home)
    assert (env["OPENFUSE_DAGSTER_PG_HOST"], env["OPENFUSE_DAGSTER_PG_PASSWORD"]) == ("db", "pw")
    assert env["OPENFUSE_CELERY_BROKER"] == secret_broker
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    # The environment a command passes on rebuilds the same settings in the child.
    for k, v in env.items():
        if k.startswith("OPENFUSE_"):
            monkeypatch.setenv(k, v)
    assert Settings() == scaled.model_copy(
        update={"home": scaled.resolved_home, "pipelines_dir": scaled.resolved_pipelines_dir}
    )

    for k in ("OPENFUSE_DAGSTER_PG_URL", "OPENFUSE_DAGSTER_PG_HOST"):
        monkeypatch.delenv(k)
    with pytest.raises(ConfigError, match="OPENFUSE_DAGSTER_PG_HOST") as ei:
        prepare_dagster_home(Settings())
    assert ei.value.field == "OPENFUSE_DAGSTER_PG_URL"


@pytest.mark.slow
def test_openfuse_dev_serves_the_code_location_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    pipes = tmp_path / "pipelines"
    pipes.mkdir()
    (pipes / "hello.yaml").write_text(textwrap.dedent(PIPELINE), encoding="utf-8")
    port, api_port, web_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENFUSE_", "DAGSTER_"))}
    env |= {
        "OPENFUSE_HOME": str(tmp_path / "of"),
        "OPENFUSE_PIPELINES_DIR": str(pipes),
        "OPENFUSE_API_PORT": str(api_port),
        "OPENFUSE_DASHBOARD_PORT": str(web_port),
        "OF_CLI_DSN": "postgresql://postgres@127.0.0.1:5432/not_connected_at_load",
    }
    # The real `openfuse` app, with the commands added the way the entry point adds them.
    code = (
        "from openfuse_connectors.cli import app; from openfuse_dagster.cli import register\n"
        "if not any(c.name == 'dev' for c in app.registered_commands): register(app)\n"
        "app()"
    )
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "dev", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # The dashboard may have no production build yet (then `next dev` compiles on first visit).
        text = wait_for("openfuse dev to be ready", lambda: _ready(log, proc), 300)
        assert f"Dagster UI    http://127.0.0.1:{port}" in text
        assert f"GraphQL API   http://127.0.0.1:{port}/graphql" in text
        assert f"OpenFuse API  http://127.0.0.1:{api_port}/api/v1" in text
        assert f"dashboard     http://127.0.0.1:{web_port}" in text
        assert f"DAGSTER_HOME  {tmp_path / 'of' / 'dagster'}" in text
        pids = {
            name: int(pid) for name, pid in re.findall(r"(webserver|daemon|api|dashboard)\s+pid (\d+)", text)
        }
        assert set(pids) == {"webserver", "daemon", "api", "dashboard"}
        # The API is migrated and reaches Dagster through this webserver (its readiness says so);
        # the dashboard serves its login page and knows where the API is.
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=30) as r:
            checks = json.loads(r.read())
        assert r.status == 200, checks
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/login", timeout=120) as r:
            assert r.status == 200 and "OpenFuse" in r.read().decode()
        data = graphql(
            f"http://127.0.0.1:{port}",
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } schedules { name } } } } }",
        )
        [repo] = data["repositoriesOrError"]["nodes"]
        assert "hello" in {j["name"] for j in repo["jobs"]}
        assert [s["name"] for s in repo["schedules"]] == ["hello_schedule"]
        assert all(group_alive(p) for p in pids.values())

        started = time.monotonic()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
        # The webserver, the daemon and the code servers they started are all gone.
        assert not [n for n, p in pids.items() if group_alive(p)]
        assert "stopping webserver, daemon, api, dashboard" in log.read_text()
    finally:
        if proc.poll() is None:  # the test failed half-way: stop it the normal way, then the hard way
            tree = descendants(proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for p in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)


def _ready(log: Path, proc: subprocess.Popen[bytes]) -> str | None:
    text = log.read_text(errors="replace")
    if proc.poll() is not None:
        raise AssertionError(f"openfuse dev exited with {proc.returncode}:\n{text[-3000:]}")
    return text if "ready: http://" in text else None
