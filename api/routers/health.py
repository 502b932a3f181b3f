"""``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics`` (Prometheus). Public: no key.

Readiness runs the checks in ``AppState.readiness_checks``: the metadata DB (reachable and
migrated to head) and the Dagster webserver (its GraphQL API answers the ``version`` query).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import AppState, StateDep
from api.errors import PROBLEM_BASE, PROBLEM_JSON, Problem, ProblemPublic
from api.metrics import CONTENT_TYPE
from api.migrate import current_revision, head_revision

__all__ = ["DAGSTER_READY_TIMEOUT", "dagster_check", "database_check", "router"]

#: Seconds the readiness probe waits for Dagster.
DAGSTER_READY_TIMEOUT = 3.0

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


def database_check(state: AppState) -> str | None:
    """The metadata DB answers and its schema is at the latest migration."""
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = current_revision(conn)
    except Exception as e:  # any failure means not ready; the class is enough to say why
        return f"unreachable ({type(e).__name__})"
    head = head_revision()
    if current != head:
        return f"schema at revision {current}, expected {head}: run `openfuse admin migrate`"
    return None


def dagster_check(state: AppState) -> str | None:
    """The Dagster webserver answers GraphQL (runs and reloads go through it)."""
    try:
        state.dagster.version(timeout=DAGSTER_READY_TIMEOUT)
    except Problem as e:
        return "unreachable" if e.status == 503 else f"error ({e.slug})"
    return None


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": ProblemPublic, "content": {PROBLEM_JSON: {}}, "description": "Not ready."}},
)
def readyz(state: StateDep) -> Readiness | JSONResponse:
    """Readiness: every dependency check passes (the metadata DB, the Dagster webserver)."""
    results = {name: check(state) for name, check in state.readiness_checks.items()}
    if all(r is None for r in results.values()):
        return Readiness(status="ready", checks={n: "ok" for n in results})
    failing = {n: r for n, r in results.items() if r is not None}
    return JSONResponse(
        {
            "type": PROBLEM_BASE + "not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "; ".join(f"{n}: {r}" for n, r in failing.items()),
            "instance": "/readyz",
            "checks": {n: r or "ok" for n, r in results.items()},
        },
        status_code=503,
        media_type=PROBLEM_JSON,
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(state: StateDep) -> PlainTextResponse:
    """Prometheus text exposition: request counts and latency histograms by route and status."""
    return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)
