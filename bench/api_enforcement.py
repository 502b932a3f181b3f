#!/usr/bin/env python3
"""The cost of the API's enforcement point: the same list request with the Cedar policy engine
deciding it, and with it replaced by the trivial workspace rule, in the same run.

    .venv/bin/python bench/api_enforcement.py [--pipelines 1000] [--duration 10] [--rounds 3]

Two ``openfuse api`` servers (``--workers 2`` each) on one migrated PostgreSQL metadata DB:

* **policy** - the default app: every request is a Cedar decision (community policies + the
  workspace's custom policies - the bench stores 200 of them, so the slice has work to do);
* **no enforcement** - the same app with ``authorizer=WorkspaceAuthorizer()``: a workspace-id
  comparison, i.e. no policy evaluation (authentication and everything else identical).

``GET /api/v1/pipelines`` (first page: 50 of 1,000) is driven closed-loop for ``--duration``
seconds per server, alternating ``--rounds`` times (A B A B ...) so drift on a shared machine hits
both; the median of the rounds is compared. Then an open loop at ``--rate`` requests/s gives
p50/p99 for each. Target (reported, never asserted): enforcement adds <= 10% to a list request.
Results go to ``bench/RESULTS.md`` (this section only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_load as al

HEADING = "## API enforcement point: list with and without the policy engine (`api_enforcement.py`)"
POLICIES = 200


def unenforced_app() -> Any:
    """uvicorn factory: the API with the trivial workspace rule instead of the policy engine."""
    sys.path.insert(0, str(al.REPO_DIR))
    from api.app import create_app
    from api.auth.authorizer import WorkspaceAuthorizer

    return create_app(authorizer=WorkspaceAuthorizer())


def policy_text(n: int) -> str:
    """``n`` custom policies of the kinds a real workspace has (team permits, tag forbids)."""
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(
                f'@id("forbid-{i}")\nforbid (principal, action == Action::"pipeline:delete", resource is Pipeline)\n'
                f'when {{ resource.tags.contains("frozen-{i}") }};'
            )
        else:
            action = ("pipeline:read", "pipeline:list", "connection:read")[i % 3]
            out.append(
                f'@id("team-{i}")\npermit (principal, action == Action::"{action}", resource)\n'
                f'when {{ principal.team == "team-{i}" && resource in principal.workspace }};'
            )
    return "\n\n".join(out)


def store_policies(db_url: str, tmp: Path, key: str) -> None:
    """Stores the custom policies through the API, under a license granting `abac` signed by a key
    pair made here (the servers then run without a license: see main)."""
    import json
    import warnings

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pydantic import SecretStr

    from api.app import create_app
    from api.settings import Settings
    from openfuse_policy import issue_license
    from openfuse_policy.license import public_key_jwk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    signer = Ed25519PrivateKey.generate()
    jwks = tmp / "bench-license-keys.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(signer.public_key(), "bench")]}))
    pem = signer.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    settings = Settings(database_url=db_url, secret_key=al.SECRET_KEY, home=tmp / "seed-home",
                        pipelines_dir=tmp / "seed-pipelines",  # never the checkout's ./pipelines
                        dagster_graphql_url="http://127.0.0.1:9/graphql",
                        license=SecretStr(issue_license(pem, "bench", "Bench", features=["abac"])),
                        license_public_keys=jwks)  # fmt: skip
    with TestClient(create_app(settings)) as c:
        r = c.put(
            "/api/v1/policies",
            headers={"Authorization": f"Bearer {key}"},
            json={"text": policy_text(POLICIES)},
        )
        assert r.status_code == 200, r.text


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--pg", default=os.environ.get("OPENFUSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--no-wrk", action="store_true")
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args(argv)
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    load_start = al.load_average()
    started = dt.datetime.now(dt.UTC)
    tmp = Path(tempfile.mkdtemp(prefix="openfuse-bench-enf-"))
    servers: list[al.Server] = []
    rounds: dict[str, list[al.Result]] = {"policy": [], "none": []}
    latency: dict[str, al.Result] = {}
    try:
        with al.database(args.pg) as db:
            print(f"seeding {args.pipelines:,} pipelines and {POLICIES} custom policies ...", flush=True)
            key, _, _ = al.seed(db, tmp, args.pipelines)
            # Policies are stored under a license that grants abac; the servers run without one,
            # so only the custom forbids are in force there - the 200-policy text is still parsed,
            # indexed and sliced. Give the servers the same license to evaluate every permit too.
            store_policies(db, tmp, key)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENFUSE_", "DAGSTER_"))}
            env = {
                **base_env,
                "OPENFUSE_ENVIRONMENT": "prod",
                "OPENFUSE_DATABASE_URL": db,
                "OPENFUSE_SECRET_KEY": al.SECRET_KEY,
                "OPENFUSE_HOME": str(tmp / "api-home"),
                "OPENFUSE_PIPELINES_DIR": str(tmp / "pipelines"),
                "OPENFUSE_DAGSTER_GRAPHQL_URL": "http://127.0.0.1:9/graphql",
            }
            ports = {"policy": al.free_port(), "none": al.free_port()}
            uvicorn = [str(al.VENV_BIN / "python"), "-m", "uvicorn", "--factory", "--host", "127.0.0.1",
                       "--workers", str(args.workers)]  # fmt: skip
            servers.append(al.start(
                "api (policy engine)", [*uvicorn, "--port", str(ports["policy"]), "api.app:create_app"],
                env, tmp / "policy.log", f"http://127.0.0.1:{ports['policy']}/healthz",
            ))  # fmt: skip
            servers.append(al.start(
                "api (no enforcement)",
                [*uvicorn, "--port", str(ports["none"]), "--app-dir", str(al.BENCH_DIR), "api_enforcement:unenforced_app"],
                env, tmp / "none.log", f"http://127.0.0.1:{ports['none']}/healthz",
            ))  # fmt: skip
            h = {"Authorization": f"Bearer {key}"}
            urls = {k: f"http://127.0.0.1:{p}/api/v1/pipelines" for k, p in ports.items()}
            import httpx

            for k, url in urls.items():
                page = httpx.get(url, headers=h, timeout=30)
                assert page.status_code == 200 and len(page.json()["items"]) == 50, (k, page.text[:300])
                al.closed_loop(url, seconds=2, connections=8, headers=h, tmp=tmp, use_wrk=use_wrk)
            for i in range(args.rounds):
                for k in ("policy", "none") if i % 2 == 0 else ("none", "policy"):
                    idle = al.wait_for_idle()
                    r = al.closed_loop(urls[k], seconds=args.duration, connections=args.connections,
                                       headers=h, tmp=tmp, use_wrk=use_wrk)  # fmt: skip
                    r.note = f"idle before: {idle:.0%}"
                    rounds[k].append(r)
                    print(f"  round {i + 1} {k}: {r.rps:,.0f} req/s, p99 {r.p99_ms:.1f} ms", flush=True)
            for k in ("policy", "none"):
                al.wait_for_idle()
                latency[k] = al.open_loop(urls[k], rate=args.rate, seconds=args.duration, headers=h)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(r.rps for r in v) for k, v in rounds.items()}
    overhead = (med["none"] / med["policy"] - 1) * 100 if med["policy"] else float("nan")
    p50_cost = latency["policy"].p50_ms - latency["none"].p50_ms
    rows = [
        "| server | closed loop req/s (per round) | median req/s | open loop p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for k, label in (("none", "no enforcement (workspace rule)"), ("policy", "policy engine (Cedar)")):
        per = ", ".join(f"{r.rps:,.0f}" for r in rounds[k])
        rows.append(
            f"| {label} | {per} | {med[k]:,.0f} | {latency[k].p50_ms:.1f} | {latency[k].p99_ms:.1f} |"
        )
    verdict = "met" if overhead <= 10 else "NOT met"
    section = "\n".join([
        HEADING, "",
        f"`python bench/api_enforcement.py --pipelines {args.pipelines} --duration {args.duration} --rounds {args.rounds}`"
        f" - {started:%Y-%m-%d %H:%M} UTC, {al.machine()}; load average {load_start} at start, {al.load_average()} at end;"
        f" {'wrk' if use_wrk else 'asyncio closed loop (wrk not installed)'}, {args.connections} connections,"
        f" open loop {args.rate:.0f} req/s; {args.workers} API workers each; {POLICIES} custom policies stored.",
        "", *rows, "",
        f"Enforcement cost on `GET /api/v1/pipelines`: throughput {overhead:+.1f}% (no-enforcement median / "
        f"policy median - 1), p50 {p50_cost:+.2f} ms at {args.rate:.0f} req/s. Target <= 10%: **{verdict}**.",
        "",
    ])  # fmt: skip
    print()
    print(section)
    if not args.no_results:
        al.HEADING = HEADING
        al.write_results(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
