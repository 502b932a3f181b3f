"""``openfuse dev`` and ``openfuse worker``: the Dagster processes of a deployment.

Registered on the ``openfuse`` CLI through the ``openfuse.cli`` entry point (``register``).
Importing this module must stay cheap - the CLI imports it on every start, ``openfuse run``
included - so Dagster is imported only inside the commands (a test checks it).

* ``openfuse dev`` prepares ``DAGSTER_HOME`` as :class:`~openfuse_dagster.settings.Settings`
  say (embedded: SQLite under ``OPENFUSE_HOME``; scaled: PostgreSQL), then runs the Dagster
  webserver and daemon on the code location ``-m openfuse_dagster.definitions`` (pipelines from
  ``OPENFUSE_PIPELINES_DIR``), optionally with Celery workers, prints the URLs, and on Ctrl-C
  (or SIGTERM) stops them all: SIGTERM to each process group, a grace period, then SIGKILL.
* ``openfuse worker`` runs one ``dagster-celery`` worker for the settings' broker and queue.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from openfuse_dagster.processes import Supervisor
    from openfuse_dagster.settings import Settings

__all__ = ["CODE_LOCATION_MODULE", "dev", "register", "worker"]

CODE_LOCATION_MODULE = "openfuse_dagster.definitions"


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


def _fail(msg: str) -> typer.Exit:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _exe(name: str) -> str:
    """A console script of this environment (next to the interpreter), else from PATH."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else name


def _init_storage(env: dict[str, str]) -> None:
    """Create or upgrade the instance's storage once, before the processes start.

    Started together on a fresh DAGSTER_HOME, the webserver, the daemon and the code server
    each create the SQLite storage and can stamp Alembic twice ("more than one head"), after
    which the code location fails to load.
    """
    import subprocess

    done = subprocess.run(
        [_exe("dagster"), "instance", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise _fail("could not prepare the Dagster instance storage: " + " | ".join(tail))


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    from openfuse_dagster.settings import Settings

    try:
        s = Settings()
    except ValidationError as e:
        raise _fail(f"invalid OPENFUSE_* setting: {e}") from None
    update = {k: v for k, v in overrides.items() if v is not None}
    return s.model_copy(update=update) if update else s


def _prepare(settings: Settings) -> dict[str, str]:
    from openfuse_connectors.errors import OpenFuseError
    from openfuse_dagster.instance import dagster_process_env, prepare_dagster_home

    try:
        prepare_dagster_home(settings)
        return dagster_process_env(settings)
    except OpenFuseError as e:
        raise _fail(str(e)) from None


_WORKSPACE_QUERY = json.dumps(
    {
        "query": "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    }
).encode()


def _code_location_state(url: str) -> tuple[bool, str | None]:
    """(loaded, load error) of the webserver's code locations, from its GraphQL API."""
    req = urllib.request.Request(f"{url}/graphql", _WORKSPACE_QUERY, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        data = json.loads(r.read()).get("data") or {}
    entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
    if not entries or any(e.get("loadStatus") != "LOADED" for e in entries):
        return False, None
    errors = [
        f"{e['name']}: {(e.get('locationOrLoadError') or {}).get('message', '').strip()}"
        for e in entries
        if (e.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
    ]
    return True, "; ".join(errors) or None


def _wait_ready(url: str, sup: Supervisor, timeout: float) -> tuple[bool, str | None]:
    """Wait until the webserver answers and has loaded the code location (or failed to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.proc.poll() is not None for c in sup.children):
            return False, None
        try:
            loaded, error = _code_location_state(url)
            if loaded:
                return True, error
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    return False, None


def _worker_argv(settings: Settings, name: str | None) -> list[str]:
    from openfuse_dagster.executors import worker_command, write_worker_config

    config = write_worker_config(
        settings, settings.resolved_dagster_home / "celery" / f"worker-{settings.celery_queue}.yaml"
    )
    return worker_command(settings, config, name=name)


def dev(
    host: Annotated[
        str | None, typer.Option(help="Webserver address (default OPENFUSE_WEBSERVER_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Webserver port (default OPENFUSE_WEBSERVER_PORT).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Also start this many Celery workers (scaled deployments).", min=0)
    ] = 0,
    logs: Annotated[
        Path | None, typer.Option(help="Write each process's output to <name>.log in this folder.")
    ] = None,
    api: Annotated[bool, typer.Option(help="Also run the OpenFuse API (port OPENFUSE_API_PORT).")] = True,
    dashboard: Annotated[
        bool | None,
        typer.Option(
            help="Also run the dashboard (web/, port OPENFUSE_DASHBOARD_PORT; needs the API). "
            "Default: when web/ has its npm packages."
        ),
    ] = None,
) -> None:
    """Run the Dagster webserver and daemon on the configured instance, the API and the
    dashboard, until Ctrl-C."""
    from openfuse_dagster.processes import Supervisor

    settings = _settings(webserver_host=host, webserver_port=port)
    if workers and settings.executor_name != "celery":
        raise _fail(f"--workers needs the Celery executor; OPENFUSE_EXECUTOR is {settings.executor_name}")
    web = _dashboard_argv(settings, wanted=dashboard) if dashboard is not False else None
    if web is not None and not api:
        raise _fail("the dashboard talks to the API only: drop --no-api, or add --no-dashboard")
    env = _prepare(settings)
    pipelines = settings.resolved_pipelines_dir
    if not pipelines.is_dir():
        _echo(f"warning: pipelines folder {pipelines} does not exist (set OPENFUSE_PIPELINES_DIR)")
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
    _init_storage(env)
    h, p = settings.webserver_host, settings.webserver_port
    url = f"http://{h}:{p}"
    api_url = f"http://{h}:{settings.api_port}"
    # The API drives runs through this webserver; the dashboard reaches the API only.
    env |= {
        "OPENFUSE_DAGSTER_GRAPHQL_URL": f"{url}/graphql",
        "OPENFUSE_API_URL": api_url,
        "NEXT_TELEMETRY_DISABLED": "1",
    }
    sup = Supervisor(env=env, say=_echo)
    location = ["-m", CODE_LOCATION_MODULE]
    try:
        sup.start(
            "webserver",
            [_exe("dagster-webserver"), *location, "-h", h, "-p", str(p)],
            log_path=logs / "webserver.log" if logs else None,
        )
        sup.start(
            "daemon",
            [_exe("dagster-daemon"), "run", *location],
            log_path=logs / "daemon.log" if logs else None,
        )
        for i in range(workers):
            sup.start(
                f"worker-{i + 1}",
                _worker_argv(settings, f"openfuse-dev-{i + 1}"),
                log_path=logs / f"worker-{i + 1}.log" if logs else None,
            )
        if api:
            sup.start(
                "api",
                [_exe("openfuse"), "api", "--host", h, "--port", str(settings.api_port)],
                log_path=logs / "api.log" if logs else None,
            )
        if web is not None:
            sup.start("dashboard", web[0], log_path=logs / "dashboard.log" if logs else None)
    except BaseException:
        sup.stop(grace_seconds=5)
        raise
    _echo(f"OpenFuse on Dagster ({settings.deployment}, {settings.executor_name} executor)")
    _echo(f"  DAGSTER_HOME  {settings.resolved_dagster_home}")
    _echo(f"  pipelines     {pipelines}")
    _echo(f"  Dagster UI    {url}")
    _echo(f"  GraphQL API   {url}/graphql")
    if api:
        _echo(f"  OpenFuse API  {api_url}/api/v1 (OpenAPI {api_url}/docs, GraphQL {api_url}/graphql)")
    if web is not None:
        _echo(f"  dashboard     http://{h}:{settings.dashboard_port} ({web[1]})")
    for c in sup.children:
        extra = f" (queue {settings.celery_queue})" if c.name.startswith("worker-") else ""
        _echo(f"  {c.name:<13} pid {c.pid}{extra}")
    ready, error = _wait_ready(url, sup, timeout=180)
    if error:
        _echo(f"warning: the code location did not load: {error}")
    if ready and api:
        ready = _wait_http(f"{api_url}/healthz", sup, timeout=60)
    if ready and web is not None:
        ready = _wait_http(f"http://{h}:{settings.dashboard_port}/login", sup, timeout=180)
    if ready:
        _echo(f"ready: {url} (Ctrl-C stops everything)")
    raise typer.Exit(sup.run())


def _dashboard_argv(settings: Settings, *, wanted: bool | None) -> tuple[list[str], str] | None:
    """How to run the dashboard (``next start`` of a production build, else ``next dev``), or
    None when it cannot run here and was not asked for explicitly (then it is an error)."""
    import shutil

    web = settings.resolved_web_dir
    node = shutil.which("node")
    cli = web / "node_modules" / "next" / "dist" / "bin" / "next" if web is not None else None
    missing = (
        "no dashboard folder (set OPENFUSE_WEB_DIR to web/)"
        if web is None
        else "Node.js (node) is not on PATH"
        if node is None
        else f"{web}/node_modules is missing (run `make install`, or `npm ci` in {web})"
        if cli is None or not cli.is_file()
        else None
    )
    if missing is not None:
        if wanted:
            raise _fail(f"--dashboard: {missing}")
        _echo(f"note: not starting the dashboard: {missing}")
        return None
    assert web is not None and node is not None and cli is not None
    built = (web / ".next" / "BUILD_ID").is_file()
    mode = "start" if built else "dev"
    how = "production build" if built else "next dev: no build in web/.next, pages compile on first visit"
    host, port = settings.webserver_host, str(settings.dashboard_port)
    return [node, str(cli), mode, str(web), "-H", host, "-p", port], how


def _wait_http(url: str, sup: Supervisor, timeout: float) -> bool:
    """Wait until ``url`` answers (any status below 500) while every child still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.proc.poll() is not None for c in sup.children):
            return False
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status < 500:
                    return True
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    _echo(f"warning: {url} did not answer within {timeout:.0f}s")
    return False


def worker(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Worker name (shown in the run's event log).")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Step processes (default OPENFUSE_WORKER_CONCURRENCY, else CPUs).", min=1),
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Queue (default OPENFUSE_CELERY_QUEUE).")] = None,
) -> None:
    """Run a Celery worker that executes the steps of OpenFuse jobs (scaled deployments)."""
    from openfuse_dagster.processes import Supervisor

    settings = _settings(worker_concurrency=concurrency, celery_queue=queue)
    if settings.executor_name != "celery":
        raise _fail(
            f"the jobs use the {settings.executor_name} executor, so no step would ever reach a worker; "
            "set OPENFUSE_DEPLOYMENT=scaled (or OPENFUSE_EXECUTOR=celery)"
        )
    env = _prepare(settings)
    # Give way to Celery's warm shutdown (it finishes running steps) before killing.
    sup = Supervisor(env=env, say=_echo, grace_seconds=float(os.environ.get("OPENFUSE_WORKER_GRACE", "60")))
    # Anything after `--` goes to `celery worker` as is, e.g. `-- --without-gossip`.
    argv = _worker_argv(settings, name) + (["--", *ctx.args] if ctx.args else [])
    child = sup.start("worker", argv)
    _echo(
        f"Celery worker pid {child.pid}: queue {settings.celery_queue!r}, DAGSTER_HOME {settings.resolved_dagster_home}"
    )
    raise typer.Exit(sup.run())


def register(app: typer.Typer) -> None:
    """Entry point of the ``openfuse.cli`` group: add ``dev`` and ``worker`` to ``app``."""
    app.command("dev")(dev)
    app.command("worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(worker)
