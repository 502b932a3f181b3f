#!/usr/bin/env python3
"""API load: throughput and latency of the OpenFuse API under `openfuse api --workers 2`, beside a
bare FastAPI endpoint served the same way in the same run (the framework's ceiling).

    .venv/bin/python bench/api_load.py [--pipelines 1000] [--duration 10] [--rate 200]

Measured from this process (a second process on loopback) against servers it starts and stops:

* ``GET /bare`` of a one-route FastAPI app (sync route, like the API's) under uvicorn with 2
  workers - the ceiling;
* ``GET /api/v1/pipelines`` (first page: 50 of 1,000 pipelines, ~40 KB) - closed loop (wrk, or
  httpx when wrk is missing) for throughput, open loop at ``--rate`` requests/s for latency;
* ``POST /api/v1/pipelines/{id}/runs`` against a real ``dagster-webserver``: the idempotency-hit
  path (the same key and body again: one metadata-DB lookup plus one Dagster ``runOrError``) under
  load, and fresh launches (export check, code-location check, Dagster ``launchRun``) one after
  another. Dagster runs the QueuedRunCoordinator and no daemon, so launched runs stay queued:
  the launch path is measured, not the syncs.

Targets (reported, never asserted): list throughput >= 40% of the bare endpoint's; p99 < 50 ms at
200 requests/s. Results go to ``bench/RESULTS.md`` (its own section only; ``--no-results`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_BIN = REPO_DIR / ".venv" / "bin"
RESULTS = BENCH_DIR / "RESULTS.md"
HEADING = "## API load: list pipelines and launch runs (`api_load.py`)"
SECRET_KEY = "bench-" + "k" * 40


def bare_app() -> Any:
    """The ceiling: FastAPI with one sync route (uvicorn factory; imported in the workers)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    def bare() -> dict[str, str]:
        return {"status": "ok"}

    db_url = os.environ.get("BENCH_DB_URL")
    if db_url:
        import hashlib
        import hmac
        import threading

        import psycopg
        from fastapi import Header
        from fastapi.responses import Response as RawResponse

        local = threading.local()

        def conn() -> Any:
            c = getattr(local, "conn", None)
            if c is None or c.closed:
                c = local.conn = psycopg.connect(db_url, autocommit=True)
            return c

        @app.get("/bare_db")
        def bare_db(authorization: str = Header("")) -> Any:
            """The same database work and answer as the API's list, written as plainly as possible:
            the key lookup (+ HMAC check), the page query with both connections, JSON by hand."""
            _, prefix, secret = authorization.removeprefix("Bearer ").split("_", 2)
            c = conn()
            row = c.execute(
                "SELECT k.secret_hash, p.workspace_id FROM api_key k JOIN principal p ON p.id = k.principal_id "
                "WHERE k.prefix = %s AND k.revoked_at IS NULL",
                (prefix,),
            ).fetchone()
            _, salt, digest = row[0].split("$")
            ok = hmac.compare_digest(
                hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest(), digest
            )
            rows = c.execute(
                "SELECT p.id, p.name, p.spec, p.schedule, p.tags, p.owner_id, p.created_at, p.updated_at, "
                "p.source_connection_id, s.name, s.connector, p.destination_connection_id, d.name, d.connector "
                "FROM pipeline p JOIN connection s ON s.id = p.source_connection_id "
                "JOIN connection d ON d.id = p.destination_connection_id "
                "WHERE p.workspace_id = %s ORDER BY p.created_at, p.id LIMIT 51",
                (row[1],),
            ).fetchall()
            items = [
                {
                    "id": r[0], "name": r[1],
                    "source": {"connection_id": r[8], "connection_name": r[9], "connector": r[10]},
                    "destination": {"connection_id": r[11], "connection_name": r[12], "connector": r[13]},
                    "streams": r[2].get("streams", []), "schema_drift": r[2].get("schema_drift"),
                    "schedule": r[3], "tags": r[4], "batch_size": r[2].get("batch_size"), "cdc": r[2].get("cdc"),
                    "owner_id": r[5], "created_at": r[6].isoformat(), "updated_at": r[7].isoformat(),
                }
                for r in rows[:50]
            ]  # fmt: skip
            body = json.dumps(
                {"items": items, "next_cursor": "x" if len(rows) > 50 else None, "ok": ok}, default=str
            )
            return RawResponse(body, media_type="application/json")

    return app


# -- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_idle(window: float = 1.0) -> float:
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals[:8])

    i0, t0 = snap()
    time.sleep(window)
    i1, t1 = snap()
    return (i1 - i0) / (t1 - t0) if t1 > t0 else 1.0


def wait_for_idle(min_idle: float = 0.8, timeout: float = 60.0) -> float:
    """Wait (at most ``timeout``) for the shared host to be ``min_idle`` idle; the idle fraction."""
    start = time.monotonic()
    idle = cpu_idle()
    while idle < min_idle and time.monotonic() - start < timeout:
        idle = cpu_idle()
    return idle


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


@dataclass
class Result:
    name: str
    how: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    note: str = ""
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group


def start(
    name: str, argv: list[str], env: dict[str, str], log: Path, ready_url: str, timeout: float = 120
) -> Server:
    import httpx

    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=REPO_DIR,
        stdin=subprocess.DEVNULL,
        stdout=open(log, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ready_url, timeout=2).status_code < 500:
                return server
        time.sleep(0.3)
    server.stop()
    raise SystemExit(f"{name} not ready after {timeout:.0f}s:\n{log.read_text(errors='replace')[-3000:]}")


# -- load generators


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    method: str = "GET",
    body: str | None = None,
    tmp: Path,
) -> Result:
    script = tmp / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    r = Result(
        "",
        f"wrk, {connections} connections, {seconds} s (closed loop)",
        requests=total,
        errors=int(non2xx.group(1)) if non2xx else 0,
        seconds=seconds,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=ms("50%"),
        p99_ms=ms("99%"),
        note=errors.group(0) if errors else "",
    )
    m = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    if m:
        v = float(m.group(1))
        r.max_ms = v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    return r


async def _closed_loop(
    url: str, seconds: float, connections: int, headers: dict[str, str], method: str, body: str | None
) -> Result:
    import httpx

    lat: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections), timeout=30) as client:

        async def worker() -> None:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await client.request(method, url, headers=headers, content=body)
                lat.append((time.perf_counter() - t) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    bad = sum(n for s, n in statuses.items() if s >= 400)
    return Result(
        "",
        f"httpx, {connections} connections, {seconds:.0f} s (closed loop)",
        len(lat),
        bad,
        elapsed,
        len(lat) / elapsed,
        pct(lat, 50),
        pct(lat, 99),
        max(lat),
        statuses=statuses,
    )


def closed_loop(
    url: str,
    *,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    method: str = "GET",
    body: str | None = None,
    tmp: Path,
    use_wrk: bool,
) -> Result:
    if use_wrk:
        return wrk(
            url, seconds=seconds, connections=connections, headers=headers, method=method, body=body, tmp=tmp
        )
    return asyncio.run(_closed_loop(url, seconds, connections, headers, method, body))


class _Conn:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a minimal client, so the load
    generator spends little of the CPUs it shares with the servers (httpx costs ~10x more)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if m:
            await self.reader.readexactly(int(m.group(1)))
        else:  # chunked
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        return status


def _raw_request(url: str, method: str, headers: dict[str, str], body: str | None) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    data = (body or "").encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None or method == "POST":
        lines.append(f"Content-Length: {len(data)}")
    return str(u.hostname), int(u.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def _open_loop(
    url: str, rate: float, seconds: float, headers: dict[str, str], method: str, body: str | None
) -> Result:
    """Requests at fixed start times; latency from the *scheduled* start (no coordinated omission).
    A request due while every connection is busy opens another one (up to 512)."""
    host, port, raw = _raw_request(url, method, headers, body)
    n = int(rate * seconds)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    idle: list[_Conn] = []
    opened = 0
    t0 = time.perf_counter() + 0.2
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)

    async def one(i: int) -> None:
        nonlocal opened
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn = idle.pop() if idle else None
        if conn is None:
            opened += 1
            conn = _Conn(host, port)
        try:
            status = await conn.request(raw)
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 599
        lat.append((time.perf_counter() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in idle:
        if c.writer is not None:
            c.writer.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    bad = sum(v for st, v in statuses.items() if st >= 400)
    return Result(
        "",
        f"{rate:.0f} requests/s for {seconds:.0f} s (open loop)",
        n,
        bad,
        elapsed,
        n / elapsed,
        pct(lat, 50),
        pct(lat, 99),
        max(lat),
        note=f"load generator used {cpu / elapsed:.0%} of a core, {opened} connections",
        statuses=statuses,
    )


def open_loop(
    url: str,
    *,
    rate: float,
    seconds: float,
    headers: dict[str, str],
    method: str = "GET",
    body: str | None = None,
) -> Result:
    return asyncio.run(_open_loop(url, rate, seconds, headers, method, body))


def sequential(url: str, n: int, headers_for: Any, body: str) -> Result:
    import httpx

    lat: list[float] = []
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=120) as client:
        t0 = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            r = client.post(url, headers=headers_for(i), content=body)
            lat.append((time.perf_counter() - t) * 1000)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        elapsed = time.perf_counter() - t0
    bad = sum(v for s, v in statuses.items() if s >= 400)
    return Result(
        "",
        f"{n} launches, one at a time",
        n,
        bad,
        elapsed,
        n / elapsed,
        pct(lat, 50),
        pct(lat, 99),
        max(lat),
        statuses=statuses,
    )


# -- the setup


@contextlib.contextmanager
def database(admin: str) -> Iterator[str]:
    import psycopg

    name = f"openfuse_bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(db_url: str, tmp: Path, pipelines: int) -> tuple[str, str, dict[str, str]]:
    """Metadata DB migrated; a key; two connections; ``pipelines`` pipelines (+1 to launch).
    Returns (API key, id of the pipeline to launch, the Dagster processes' secret env)."""
    sys.path.insert(0, str(REPO_DIR))
    from sqlmodel import Session, select

    from api.admin import create_api_key
    from api.app import create_app
    from api.db import create_db_engine
    from api.migrate import upgrade
    from api.models.connection import Connection
    from api.models.pipeline import Pipeline
    from api.models.principal import Principal
    from api.pipeline_config import build_spec
    from api.pipeline_export import secret_environment
    from api.settings import Settings
    from openfuse_connectors.registry import get_registry
    from openfuse_connectors.spec import SchemaDrift, StreamSpec

    settings = Settings(
        database_url=db_url,
        secret_key=SECRET_KEY,
        home=tmp / "seed-home",
        pipelines_dir=tmp / "seed-pipelines",  # not the folder Dagster loads: those would be 1,000 jobs
        dagster_graphql_url="http://127.0.0.1:9/graphql",
    )
    upgrade(settings.db_url)
    engine = create_db_engine(settings)
    key = create_api_key(engine, workspace="bench", name="bench", attributes={"roles": ["admin"]})
    with warnings.catch_warnings():  # Starlette prefers httpx2 for its test client; httpx is here
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {key}"}
        dsn = db_url  # the runs stay queued: the connections are never used, only validated
        for name in ("src", "dst"):
            r = client.post(
                "/api/v1/connections",
                headers=h,
                json={"name": name, "connector": "postgres", "config": {"dsn": dsn}},
            )
            assert r.status_code == 201, r.text
        streams = [
            StreamSpec(
                name="public.orders",
                mode="incremental_dedupe",
                cursor_field="updated_at",
                primary_key=("id",),
            ),
            StreamSpec(name="public.customers"),
        ]
        with Session(engine) as session:
            src = session.exec(select(Connection).where(Connection.name == "src")).one()
            dst = session.exec(select(Connection).where(Connection.name == "dst")).one()
            principal = session.exec(select(Principal).where(Principal.name == "bench")).one()
            spec = build_spec(
                get_registry(),
                name="x",
                source=src,
                destination=dst,
                streams=streams,
                schema_drift=SchemaDrift.EVOLVE,
                batch_size=100_000,
                schedule=None,
                tags={},
            )
            for i in range(pipelines):
                session.add(
                    Pipeline(
                        workspace_id=src.workspace_id,
                        name=f"bench_{i:04d}",
                        spec=dict(spec, name=f"bench_{i:04d}"),
                        source_connection_id=src.id,
                        destination_connection_id=dst.id,
                        owner_id=principal.id,
                        tags={"team": "bench", "tier": str(i % 3)},
                    )
                )
            launch = Pipeline(
                workspace_id=src.workspace_id,
                name="launch_me",
                spec=dict(spec, name="launch_me"),
                source_connection_id=src.id,
                destination_connection_id=dst.id,
                owner_id=principal.id,
                tags={},
            )
            session.add(launch)
            session.commit()
            secrets = secret_environment(
                session, create_app(settings, engine=engine).state.openfuse.secret_box
            )
            launch_id = str(launch.id)
    engine.dispose()
    return key, launch_id, secrets


def dagster_yaml(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {home}\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )


def versions() -> str:
    from importlib.metadata import version

    parts = [
        f"{p} {version(p)}"
        for p in ("fastapi", "starlette", "uvicorn", "pydantic", "strawberry-graphql", "dagster-webserver")
    ]
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        parts.append((out.stdout or out.stderr).splitlines()[0].split(" [")[0])
    return ", ".join(parts)


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    mem = next(
        (
            int(ln.split()[1]) / 2**20
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal:")
        ),
        0.0,
    )
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, {platform.system()} {platform.machine()}"


def commit() -> str:
    head = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "api"], capture_output=True, text=True
    ).stdout.strip()
    return head + (" + uncommitted changes in api/" if dirty else "")


def write_results(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md (read just before writing), keep the rest."""
    text = RESULTS.read_text() if RESULTS.exists() else "# OpenFuse benchmark results\n\n"
    lines = text.splitlines()
    try:
        start_i = lines.index(HEADING)
    except ValueError:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start_i + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start_i] + section.rstrip("\n").splitlines() + [""] + lines[end:])
    RESULTS.write_text(new.rstrip("\n") + "\n")


def table(results: list[Result]) -> str:
    rows = [
        "| endpoint | load | requests | errors | requests/s | p50 ms | p99 ms | max ms | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.name} | {r.how} | {r.requests:,} | {r.errors:,} | {r.rps:,.0f} | {r.p50_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.max_ms:.1f} | {r.note} |"
        )
    return "\n".join(rows)


# -- main


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10, help="Seconds per closed-loop measurement.")
    ap.add_argument("--connections", type=int, default=32, help="Closed-loop concurrency.")
    ap.add_argument("--rate", type=float, default=200.0, help="Open-loop requests/s.")
    ap.add_argument("--launches", type=int, default=30, help="Fresh launches, one at a time.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--pg", default=os.environ.get("OPENFUSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument(
        "--no-wrk", action="store_true", help="Use the httpx closed loop even when wrk is installed."
    )
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args(argv)
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    load_start = load_average()
    results: list[Result] = []
    servers: list[Server] = []
    tmp = Path(tempfile.mkdtemp(prefix="openfuse-bench-api-"))
    started = dt.datetime.now(dt.UTC)
    try:
        with database(args.pg) as db:
            print(f"seeding {args.pipelines:,} pipelines ...", flush=True)
            key, launch_id, secrets = seed(db, tmp, args.pipelines)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENFUSE_", "DAGSTER_"))}
            dhome = tmp / "dagster"
            dagster_yaml(dhome)
            dport, aport, bport = free_port(), free_port(), free_port()
            denv = {
                **base_env,
                **secrets,
                "DAGSTER_HOME": str(dhome),
                "OPENFUSE_HOME": str(tmp / "d-home"),
                "OPENFUSE_PIPELINES_DIR": str(tmp / "pipelines"),
            }
            (tmp / "pipelines").mkdir()
            print("starting dagster-webserver, the API and the bare app ...", flush=True)
            servers.append(
                start(
                    "dagster-webserver",
                    [
                        str(VENV_BIN / "dagster-webserver"),
                        "-m",
                        "openfuse_dagster.definitions",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(dport),
                    ],
                    denv,
                    tmp / "dagster.log",
                    f"http://127.0.0.1:{dport}/server_info",
                )
            )
            aenv = {
                **base_env,
                "OPENFUSE_ENVIRONMENT": "prod",
                "OPENFUSE_DATABASE_URL": db,
                "OPENFUSE_SECRET_KEY": SECRET_KEY,
                "OPENFUSE_HOME": str(tmp / "api-home"),
                "OPENFUSE_PIPELINES_DIR": str(tmp / "pipelines"),
                "OPENFUSE_DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{dport}/graphql",
            }
            servers.append(
                start(
                    "openfuse api",
                    [
                        str(VENV_BIN / "openfuse"),
                        "api",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(aport),
                        "--workers",
                        str(args.workers),
                    ],
                    aenv,
                    tmp / "api.log",
                    f"http://127.0.0.1:{aport}/healthz",
                )
            )
            servers.append(
                start(
                    "bare",
                    [
                        str(VENV_BIN / "python"),
                        "-m",
                        "uvicorn",
                        "--factory",
                        "api_load:bare_app",
                        "--app-dir",
                        str(BENCH_DIR),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(bport),
                        "--workers",
                        str(args.workers),
                        "--proxy-headers",
                    ],
                    {**base_env, "BENCH_DB_URL": db},
                    tmp / "bare.log",
                    f"http://127.0.0.1:{bport}/bare",
                )
            )
            h = {"Authorization": f"Bearer {key}"}
            api = f"http://127.0.0.1:{aport}"
            bare = f"http://127.0.0.1:{bport}/bare"
            listing = f"{api}/api/v1/pipelines"
            import httpx

            page = httpx.get(listing, headers=h, timeout=30)
            assert page.status_code == 200 and len(page.json()["items"]) == 50, page.text[:300]
            page_kb = len(page.content) / 1024
            for url in (bare, listing):  # warm-up: connections, caches, JIT-less but imports
                closed_loop(url, seconds=2, connections=8, headers=h, tmp=tmp, use_wrk=use_wrk)

            def throughput(url: str, headers: dict[str, str], name: str) -> Result:
                idle = wait_for_idle()
                r = closed_loop(
                    url,
                    seconds=args.duration,
                    connections=args.connections,
                    headers=headers,
                    tmp=tmp,
                    use_wrk=use_wrk,
                )
                r.name, r.note = name, f"idle before: {idle:.0%}"
                return r

            results.append(throughput(bare, {}, "`GET /bare` (FastAPI, one sync route)"))
            results.append(
                throughput(
                    listing, h, f"`GET /api/v1/pipelines` (50 of {args.pipelines:,}, {page_kb:.0f} KB)"
                )
            )
            bare_db = f"http://127.0.0.1:{bport}/bare_db"
            probe = httpx.get(bare_db, headers=h, timeout=30)
            assert probe.status_code == 200 and len(probe.json()["items"]) == 50, probe.text[:300]
            closed_loop(bare_db, seconds=2, connections=8, headers=h, tmp=tmp, use_wrk=use_wrk)
            bare_db_result = throughput(
                bare_db,
                h,
                "`GET /bare_db` (the same key lookup + page query, plain psycopg + json, "
                f"{len(probe.content) / 1024:.0f} KB)",
            )
            idle = wait_for_idle()
            r = open_loop(listing, rate=args.rate, seconds=args.duration, headers=h)
            r.name = f"`GET /api/v1/pipelines` (50 of {args.pipelines:,})"
            r.note += f"; idle before: {idle:.0%}"
            results.append(r)
            idle = wait_for_idle()
            r = open_loop(bare, rate=args.rate, seconds=args.duration, headers={})
            r.name = "`GET /bare`"
            r.note += f"; idle before: {idle:.0%}"
            results.append(r)

            # Launches: the first exports the pipeline and reloads the code location (untimed).
            launch_url = f"{api}/api/v1/pipelines/{launch_id}/runs"
            body = json.dumps({"streams": ["public.orders"]})
            hit = {**h, "Content-Type": "application/json", "Idempotency-Key": "bench-replay"}
            first = httpx.post(launch_url, headers=hit, content=body, timeout=180)
            assert first.status_code == 201, first.text
            again = httpx.post(launch_url, headers=hit, content=body, timeout=60)
            assert (
                again.headers.get("idempotent-replayed") == "true"
                and again.json()["id"] == first.json()["id"]
            )
            idle = wait_for_idle()
            r = sequential(
                launch_url,
                args.launches,
                lambda i: {
                    **h,
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"bench-{uuid.uuid4()}",
                },
                body,
            )
            r.name, r.note = (
                "`POST /pipelines/{id}/runs` (new run each)",
                f"Dagster launchRun included; idle before: {idle:.0%}",
            )
            results.append(r)
            idle = wait_for_idle()
            r = closed_loop(
                launch_url,
                seconds=args.duration,
                connections=8,
                headers=hit,
                method="POST",
                body=body,
                tmp=tmp,
                use_wrk=use_wrk,
            )
            r.name, r.note = (
                "`POST /pipelines/{id}/runs` (idempotency hit)",
                f"8 connections; idle before: {idle:.0%}",
            )
            results.append(r)
            idle = wait_for_idle()
            r = open_loop(
                launch_url,
                rate=min(args.rate, 50),
                seconds=args.duration,
                headers=hit,
                method="POST",
                body=body,
            )
            r.name = "`POST /pipelines/{id}/runs` (idempotency hit)"
            r.note += f"; idle before: {idle:.0%}"
            results.append(r)
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load_end = load_average()

    bare_rps = results[0].rps
    list_rps = results[1].rps
    ratio = list_rps / bare_rps if bare_rps else 0.0
    at_rate = results[2]
    results.insert(2, bare_db_result)
    db_rps = bare_db_result.rps
    db_ratio = list_rps / db_rps if db_rps else 0.0
    targets = [
        "| target | measured | result |",
        "|---|---|---|",
        f"| list throughput >= 40% of the bare endpoint's | {ratio:.1%} ({list_rps:,.0f} / {bare_rps:,.0f} requests/s) | {'met' if ratio >= 0.4 else 'NOT met'} |",
        f"| (the same against a floor doing the same database work: `/bare_db`) | {db_ratio:.1%} ({list_rps:,.0f} / {db_rps:,.0f} requests/s) | {'met' if db_ratio >= 0.4 else 'NOT met'} |",
        f"| list p99 < 50 ms at {args.rate:.0f} requests/s | {at_rate.p99_ms:.1f} ms (p50 {at_rate.p50_ms:.1f} ms, {at_rate.errors} errors) | {'met' if at_rate.p99_ms < 50 and not at_rate.errors else 'NOT met'} |",
    ]
    section = "\n".join(
        [
            HEADING,
            "",
            f"- date: {started:%Y-%m-%d %H:%M} UTC (repository commit {commit()})",
            f"- machine: {machine()}; load average (1/5/15 min) {load_start} at start, {load_end} at the end (a shared host: other work shows up as noise; each measurement waits for the CPUs to be >= 80% idle, at most 60 s, and notes the idle share it started from)",
            f"- servers, all on this host: `openfuse api --workers {args.workers}` (uvicorn, `OPENFUSE_ENVIRONMENT=prod`, PostgreSQL metadata DB on 127.0.0.1); the bare app under `uvicorn --factory --workers {args.workers}` with the same defaults; `dagster-webserver` (SQLite storage, QueuedRunCoordinator, no daemon: launched runs stay queued). Load from this script's process over loopback",
            f"- data: {args.pipelines:,} pipelines of 2 streams in one workspace; the list answers its first page (50 pipelines); runs of a separate pipeline (1 stream selected)",
            f"- versions: {versions()}",
            "- requests/s = completed requests / wall time; closed loop = each connection sends its next request when the previous answers (throughput); open loop = requests start on a fixed schedule and latency is counted from the scheduled start (so a slow server's queueing shows)",
            "",
            table(results),
            "",
            "Targets (reported, not asserted):",
            "",
            "\n".join(targets),
            "",
            f"Rerun: `.venv/bin/python bench/api_load.py --pipelines {args.pipelines}`",
            "",
        ]
    )
    print(section)
    if not args.no_results:
        write_results(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
