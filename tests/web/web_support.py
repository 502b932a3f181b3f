"""What the dashboard's end-to-end test runs on: the toolchain check, the build (reused while its
inputs are unchanged), and an installation - a real ``openfuse api`` process on its own SQLite
metadata DB with keys, connections and pipelines made the way an operator makes them, plus
``next start`` pointed at it.

Every process starts in a session (process group) of its own with ``PR_SET_PDEATHSIG``, and is
stopped with its whole group - on success, on failure, and if the test process itself dies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from proc_support import die_with_parent, free_port, stop_group, tail

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
CHROMIUM = Path("/usr/bin/chromium")
BIN = Path(sys.executable).parent
SECRET_KEY = "dashboard-e2e-" + "k" * 40
#: A Dagster URL nothing listens on (port 9, discard): every run call is "Dagster unreachable".
NO_DAGSTER = "http://127.0.0.1:9/graphql"
#: The build's inputs: everything in web/ but what the build, npm and the e2e run write or read.
_NOT_INPUTS = {"node_modules", ".next", "e2e", "README.md", "next-env.d.ts", "tsconfig.tsbuildinfo"}
_STAMP = WEB / ".next" / "openfuse-build-inputs.sha256"


def require_toolchain() -> str:
    """The node binary; fails (never skips) naming what is missing."""
    missing = []
    node = shutil.which("node")
    if node is None:
        missing.append("node (Node.js 20.9+) is not on PATH")
    if not (WEB / "node_modules" / ".package-lock.json").is_file():
        missing.append(f"{WEB / 'node_modules'} is missing (npm ci from web/package-lock.json)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} is missing (Debian package chromium)")
    if missing:
        pytest.fail(
            "the dashboard test needs: " + "; ".join(missing) + ". `make install` installs them.",
            pytrace=False,
        )
    assert node is not None
    return node


def _build_inputs_digest(node: str) -> str:
    h = hashlib.sha256()
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    h.update(version.encode())
    for path in sorted(WEB.rglob("*")):
        rel = path.relative_to(WEB)
        if rel.parts[0] in _NOT_INPUTS or not path.is_file():
            continue
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


# Next's advice, not a defect of the code: with ``CI`` set (as in CI) and no ``.next/cache`` of an
# earlier build, it suggests caching builds between CI runs.
_ADVISORIES = ("No build cache found",)


def build(node: str) -> tuple[float, bool]:
    """``npm run build`` unless ``web/.next`` is a build of the same inputs (sources, lock file,
    Node version); ``OPENFUSE_WEB_REBUILD=1`` forces one. Returns (seconds, built)."""
    digest = _build_inputs_digest(node)
    fresh = (
        _STAMP.is_file()
        and _STAMP.read_text().strip() == digest
        and (WEB / ".next" / "BUILD_ID").is_file()
        and os.environ.get("OPENFUSE_WEB_REBUILD") != "1"
    )
    if fresh:
        return 0.0, False
    started = time.monotonic()
    _STAMP.unlink(missing_ok=True)
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    proc = subprocess.run(
        ["npm", "run", "build"], cwd=WEB, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`npm run build` in web/ failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    warnings = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if ("⚠" in line or "warning" in line.lower()) and not any(ok in line for ok in _ADVISORIES)
    ]
    assert not warnings, "`npm run build` warned:\n" + "\n".join(warnings)
    _STAMP.write_text(digest + "\n")
    return time.monotonic() - started, True


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 3000) -> str:
        return tail(self.log, n)

    def stop(self, grace: float = 5.0) -> None:
        stop_group(self.proc, self.name, grace)


@contextlib.contextmanager
def started(name: str, args: list[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> Iterator[Process]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    p = Process(name, proc, log)
    try:
        yield p
    finally:
        p.stop()


def wait_http(p: Process, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if p.proc.poll() is not None:
            raise AssertionError(f"{p.name} exited with {p.proc.returncode}:\n{p.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as r:
            if r.status == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{p.name} did not answer {url} within {timeout:.0f}s:\n{p.tail()}")
        time.sleep(0.2)


def rest(api: str, key: str, method: str, path: str, body: Any = None) -> Any:
    """One call to the API as a client makes it; any error status fails with the problem."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(api + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None
    return json.loads(raw) if raw else None


def license_env(tmp: Path, customer: str, expires_in_days: int) -> dict[str, str]:
    """``OPENFUSE_LICENSE`` and ``OPENFUSE_LICENSE_PUBLIC_KEYS`` for an enterprise license with
    every feature, signed by a key pair made here (as tests/api/api_support.make_license does)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from openfuse_policy import issue_license
    from openfuse_policy.license import public_key_jwk

    key = Ed25519PrivateKey.generate()
    jwks = tmp / "license-keys.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(key.public_key(), "dashboard-e2e")]}))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token = issue_license(
        pem,
        "dashboard-e2e",
        customer,
        features=("abac", "masking", "audit_export"),
        seats=25,
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days),
    )
    return {"OPENFUSE_LICENSE": token, "OPENFUSE_LICENSE_PUBLIC_KEYS": str(jwks)}


@dataclass
class Installation:
    """One OpenFuse installation with the dashboard in front of it."""

    api_url: str
    dashboard_url: str
    keys: dict[str, str]
    pipelines: dict[str, dict[str, Any]]
    secrets: list[str]
    processes: list[Process] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(p.log.read_text(errors="replace") for p in self.processes)


#: What every installation holds: the pipelines (the first one is the one the test opens).
PIPELINES: list[dict[str, Any]] = [
    {
        "name": "orders_to_warehouse",
        "source": {"connection": "shop"},
        "destination": {"connection": "warehouse"},
        "streams": [
            {
                "name": "orders",
                "mode": "incremental_dedupe",
                "cursor_field": "updated_at",
                "primary_key": ["id"],
            },
            {"name": "customers", "mode": "full_refresh_overwrite"},
        ],
        "schedule": "0 * * * *",
        "tags": {"team": "data"},
    },
    {
        "name": "crm_contacts",
        "source": {"connection": "shop"},
        "destination": {"connection": "warehouse"},
        "streams": [{"name": "contacts"}],
        "tags": {"team": "crm"},
    },
    {
        "name": "events_archive",
        "source": {"connection": "shop"},
        "destination": {"connection": "warehouse"},
        "streams": [{"name": "events", "mode": "full_refresh_append"}],
        "tags": {"team": "data", "tier": "cold"},
    },
]


@contextlib.contextmanager
def installation(tmp: Path, *, license: Mapping[str, str] | None = None) -> Iterator[Installation]:
    """Migrate a fresh SQLite metadata DB, make keys with the CLI, start the API, create
    connections and pipelines through REST, then start the built dashboard pointed at it."""
    home = tmp / "home"
    home.mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENFUSE_", "DAGSTER_"))}
    env = {
        **base,
        "OPENFUSE_HOME": str(home),
        "OPENFUSE_SECRET_KEY": SECRET_KEY,
        "OPENFUSE_DAGSTER_GRAPHQL_URL": NO_DAGSTER,
        "OPENFUSE_PIPELINES_DIR": str(home / "pipelines"),
        **dict(license or {}),
    }
    openfuse = str(BIN / "openfuse")

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [openfuse, *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"openfuse {' '.join(args[:2])} failed: {proc.stderr[-2000:]}"
        return proc.stdout.strip()

    cli("admin", "migrate")
    keys = {
        "admin": cli("admin", "create-key", "--workspace", "acme", "--name", "ada", "--attr", "roles=admin"),
        "viewer": cli(
            "admin", "create-key", "--workspace", "acme", "--name", "vic", "--attr", "roles=viewer"
        ),
    }
    assert all(k.startswith("of_") for k in keys.values()), "create-key did not print a key"
    with contextlib.ExitStack() as stack:
        api_port = free_port()
        api = stack.enter_context(
            started(
                "openfuse api",
                [openfuse, "api", "--port", str(api_port)],
                env=env,
                cwd=tmp,
                log=tmp / "api.log",
            )
        )
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(api, f"{api_url}/healthz")

        admin = keys["admin"]
        secret = f"S3cret-{uuid.uuid4().hex}"
        rest(api_url, admin, "POST", "/api/v1/connections", {
            "name": "shop", "connector": "sqlite", "config": {"path": str(tmp / "shop.db")},
        })  # fmt: skip
        rest(api_url, admin, "POST", "/api/v1/connections", {
            "name": "warehouse", "connector": "postgres",
            "config": {"dsn": f"postgresql://loader:{secret}@127.0.0.1:5432/warehouse"},
        })  # fmt: skip
        pipelines = {}
        for spec in PIPELINES:
            pipelines[spec["name"]] = rest(api_url, admin, "POST", "/api/v1/pipelines", spec)
        first = pipelines[PIPELINES[0]["name"]]
        rest(api_url, admin, "POST", f"/api/v1/pipelines/{first['id']}/state", {
            "stream": "orders",
            "state": {"cursor": {"field": "updated_at", "type": "timestamp[us]", "value": "2026-11-01 12:00:00.000000"}},
        })  # fmt: skip

        web_port = free_port()
        web_env = {
            **base,
            "OPENFUSE_API_URL": api_url,
            "NEXT_TELEMETRY_DISABLED": "1",
            "NODE_ENV": "production",
        }
        next_bin = str(WEB / "node_modules" / "next" / "dist" / "bin" / "next")
        web = stack.enter_context(
            started(
                "next start",
                [shutil.which("node") or "node", next_bin, "start", "-p", str(web_port), "-H", "127.0.0.1"],
                env=web_env,
                cwd=WEB,
                log=tmp / "next.log",
            )
        )
        dashboard_url = f"http://127.0.0.1:{web_port}"
        wait_http(web, f"{dashboard_url}/login")
        yield Installation(api_url, dashboard_url, keys, pipelines, [secret], [api, web])
