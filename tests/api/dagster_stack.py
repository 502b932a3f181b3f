"""A real ``dagster-webserver`` for the API tests, and the guarantee that it dies with the test;
and :func:`build_stack`, the API wired to it (used by tests/api/conftest.py's ``dagster_stack``).

The webserver loads ``-m openfuse_dagster.definitions`` with ``OPENFUSE_PIPELINES_DIR`` = the
folder the API exports to, on a temporary ``DAGSTER_HOME`` with SQLite storage and the default
run coordinator and launcher (a launched run starts at once in a process of its own; no daemon
needed). Its environment is built from scratch - no ``OPENFUSE_*`` or ``DAGSTER_*`` variable of
the test process leaks in - plus what the caller passes (the connections' secrets).

It starts in a process group of its own (its code servers and run workers join it) with
``PR_SET_PDEATHSIG``, so a crashed test run does not leave it behind; :meth:`Webserver.stop`
SIGTERMs the group, SIGKILLs what is left after a grace period and checks nothing remains.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from api_support import Api, TestClient, bearer, cli_key, make_license, make_settings, pg_database
from proc_support import die_with_parent, free_port, stop_group, tail
from pydantic import SecretStr
from sqlmodel import Session

from api.app import create_app
from api.auth.authorizer import Decision, Resource, Subject
from api.migrate import upgrade
from api.pipeline_export import secret_environment

__all__ = [
    "LOCATION",
    "MASKING_SALT",
    "PASSWORD",
    "REPOSITORY",
    "STACK_ROWS",
    "DenyInWorkspace",
    "Stack",
    "Webserver",
    "build_stack",
    "free_port",
    "start_webserver",
    "wait_for",
]

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LOCATION = "openfuse_dagster.definitions"
REPOSITORY = "__repository__"


@dataclass
class Webserver:
    url: str  # .../graphql
    proc: subprocess.Popen[bytes]
    home: Path
    log: Path

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            out = json.loads(r.read())
        assert not out.get("errors"), out["errors"]
        return dict(out["data"])

    def jobs(self) -> set[str]:
        data = self.graphql(
            "query($s: RepositorySelector!) { repositoryOrError(repositorySelector: $s) { "
            "... on Repository { jobs { name } } } }",
            {"s": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}},
        )
        return {j["name"] for j in (data["repositoryOrError"] or {}).get("jobs") or ()}

    def tail(self, n: int = 4000) -> str:
        return tail(self.log, n)

    def stop(self, grace: float = 2.0) -> None:
        stop_group(self.proc, "the Dagster webserver", grace)


def start_webserver(
    tmp: Path,
    pipelines_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    timeout: float = 120.0,
) -> Webserver:
    """Start the webserver and wait until its code location has loaded."""
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {home}\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n",
        encoding="utf-8",
    )
    pipelines_dir.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENFUSE_", "DAGSTER_"))}
    child_env = {
        **base,
        "DAGSTER_HOME": str(home),
        "OPENFUSE_HOME": str(tmp / "openfuse_home"),
        "OPENFUSE_PIPELINES_DIR": str(pipelines_dir),
        # Python transforms of the tests (tests/api/dagster_transforms.py) import in run workers.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), base.get("PYTHONPATH")])),
        **dict(env or {}),
    }
    port = port or free_port()
    log = tmp / "dagster-webserver.log"
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
        env=child_env,
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        stdout=open(log, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    server = Webserver(f"http://127.0.0.1:{port}/graphql", proc, home, log)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"dagster-webserver exited with {proc.returncode}:\n{server.tail()}")
            with contextlib.suppress(OSError, AssertionError, ValueError):
                data = server.graphql(
                    "query($n: String!) { workspaceLocationEntryOrError(name: $n) { "
                    "... on WorkspaceLocationEntry { loadStatus } } }",
                    {"n": LOCATION},
                )
                entry = data["workspaceLocationEntryOrError"]
                if entry and entry.get("loadStatus") == "LOADED":
                    return server
            if time.monotonic() > deadline:
                raise AssertionError(f"dagster-webserver not ready after {timeout:.0f}s:\n{server.tail()}")
            time.sleep(0.3)
    except BaseException:
        server.stop()
        raise


def wait_for(what: str, fn: Any, timeout: float, every: float = 0.5) -> Any:
    """The first truthy value ``fn()`` returns, polling; fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# -- the API wired to a live webserver

PASSWORD = f"pw-{uuid.uuid4().hex}"  # in the DSNs; trust auth ignores it: the secret the tests hunt for
#: Rows of the source tables public.orders, public.customers, public.events.
STACK_ROWS = (250, 40, 60)


class DenyInWorkspace:
    """Denies everything; the reason names the action and the resource it was asked about."""

    def decide(self, principal: Subject, action: str, resource: Resource) -> Decision:
        return Decision(False, (f"deny {action} on {resource.type}:{resource.id or '*'}",))


@dataclass
class Stack:
    api: Api
    deny: TestClient  # the same app with DenyInWorkspace
    dagster: Webserver
    key_a: str  # ann, workspace acme (owns everything below)
    key_b: str  # bob, workspace globex
    source: str  # PostgreSQL URLs
    destination: str
    tmp: Path
    ids: dict[str, Any] = field(default_factory=dict)  # connection ids: src, warehouse

    @property
    def c(self) -> TestClient:
        return self.api.client

    @property
    def hold(self) -> Path:
        """While this file exists, ``dagster_transforms.hold`` keeps runs waiting."""
        return self.tmp / "hold"

    def gql(self, query: str, variables: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        r = self.c.post(
            "/graphql", json={"query": query, "variables": variables}, headers=bearer(key or self.key_a)
        )
        assert r.status_code == 200 and not r.json().get("errors"), r.text
        return dict(r.json()["data"])

    def wait_run(self, run_id: str, timeout: float = 180) -> dict[str, Any]:
        h = bearer(self.key_a)

        def done() -> dict[str, Any] | None:
            r = self.c.get(f"/api/v1/runs/{run_id}", headers=h)
            assert r.status_code == 200, r.text
            return r.json() if r.json()["status"] in ("success", "failure", "canceled") else None

        try:
            return dict(wait_for(f"run {run_id} to finish", done, timeout, every=0.5))
        except AssertionError:
            raise AssertionError(f"run {run_id} did not finish:\n{self.dagster.tail()}") from None


MASKING_SALT = "stack-salt-for-tests"


def _dsn(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@", 1)


def _seed(source: str) -> None:
    orders, customers, events = STACK_ROWS
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.orders AS SELECT g AS id, (g * 1.25)::numeric(10,2) AS amount, "
            "'2024-01-01'::timestamptz + g * interval '1 minute' AS updated_at "
            f"FROM generate_series(1, {orders}) g"
        )
        conn.execute("ALTER TABLE public.orders ADD PRIMARY KEY (id)")
        conn.execute(
            "CREATE TABLE public.customers AS SELECT g::bigint AS id, 'c' || g AS name "
            f"FROM generate_series(1, {customers}) g"
        )
        conn.execute(f"CREATE TABLE public.events AS SELECT g AS id FROM generate_series(1, {events}) g")


@contextlib.contextmanager
def build_stack(pg_server: str, tmp: Path) -> Iterator[Stack]:
    """Three fresh PostgreSQL databases (metadata, source, destination), the API on the first,
    two postgres connections created through it, then the webserver with their secrets."""
    with contextlib.ExitStack() as es:
        meta, source, destination = (
            es.enter_context(contextlib.contextmanager(pg_database)(pg_server)) for _ in range(3)
        )
        _seed(source)
        port = free_port()
        settings = make_settings(
            meta,
            tmp / "home",
            pipelines_dir=tmp / "pipelines",
            dagster_graphql_url=f"http://127.0.0.1:{port}/graphql",
        )
        # An enterprise license from a key pair of the test's own (the private key never leaves
        # it), so custom policies and masking obligations apply in the API and in the sync steps.
        license_env = make_license(tmp)
        settings = settings.model_copy(
            update={
                "license": SecretStr(license_env["OPENFUSE_LICENSE"]),
                "license_public_keys": Path(license_env["OPENFUSE_LICENSE_PUBLIC_KEYS"]),
            }
        )
        upgrade(settings.db_url)
        key_a = cli_key(settings, "acme", "ann", "team=data")
        key_b = cli_key(settings, "globex", "bob")
        app = create_app(settings)
        client = es.enter_context(TestClient(app))
        deny = es.enter_context(TestClient(create_app(settings, authorizer=DenyInWorkspace())))
        ids = {}
        for name, url, extra in (("src", source, {}), ("warehouse", destination, {"schema": "analytics"})):
            r = client.post(
                "/api/v1/connections",
                headers=bearer(key_a),
                json={"name": name, "connector": "postgres", "config": {"dsn": _dsn(url), **extra}},
            )
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        state = app.state.openfuse
        with Session(state.engine) as session:
            secrets = secret_environment(session, state.secret_box)
        assert len(secrets) == 2 and all(k.startswith("OPENFUSE_SECRET_") for k in secrets)
        hold = {"OPENFUSE_TEST_HOLD": str(tmp / "hold")}
        # The sync steps append their policy decisions to the metadata DB's audit log.
        governance = {**license_env, "OPENFUSE_DATABASE_URL": meta, "OPENFUSE_MASKING_SALT": MASKING_SALT}
        dagster = start_webserver(tmp, settings.pipelines_dir, {**secrets, **hold, **governance}, port=port)
        es.callback(dagster.stop)
        yield Stack(Api(client, settings), deny, dagster, key_a, key_b, source, destination, tmp, ids)
