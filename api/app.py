"""The FastAPI application: ``create_app(settings)`` builds one, nothing is built at import.

``uvicorn --factory api.app:create_app`` (or ``openfuse api``) serves it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from sqlalchemy import Engine

from api.auth.authorizer import Authorizer
from api.auth.policy import DbPolicyStore, LicenseHolder, PolicyAuthorizer
from api.db import create_db_engine
from api.deps import AppState
from api.errors import PROBLEM_JSON, ProblemPublic, install_error_handlers
from api.graphql import graphql_router
from api.metrics import Metrics, MetricsMiddleware
from api.middleware import BodyGuardMiddleware
from api.routers import (
    audit,
    connections,
    connectors,
    governance,
    health,
    pipelines,
    principals,
    runs,
    stream_state,
)
from api.settings import Settings
from openfuse_connectors.registry import Registry, get_registry

__all__ = ["API_PREFIX", "PUBLIC_PATHS", "create_app"]

API_PREFIX = "/api/v1"
#: Paths served without an API key; every other route goes through ``Authorize``. (``/graphql``
#: is reachable without one, but each of its fields authenticates and authorizes as its REST twin.)
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/graphql"}
)

_PROBLEMS = {
    400: "Bad request (malformed JSON, invalid cursor).",
    401: "Missing or invalid API key.",
    403: "The authorizer denied the action.",
    404: "No such resource in the caller's workspace.",
    409: "Conflicts with the current state (duplicate name, resource in use).",
    413: "Request body too large.",
    415: "Request body is not JSON.",
    422: "Validation failed; `errors` names each field.",
    500: "Unexpected error; `error_id` is in the server log.",
    502: "A connector or Dagster failed (`connector-*`, `dagster-error`).",
    503: "The metadata DB or Dagster did not answer (`database-unavailable`, `dagster-unavailable`).",
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemPublic, "description": text} for status, text in _PROBLEMS.items()
}


def _version() -> str:
    try:
        return version("openfuse")
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "0.0.0"


def create_app(
    settings: Settings | None = None,
    *,
    authorizer: Authorizer | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        settings: defaults to ``Settings()`` from the environment.
        authorizer: decides every request; default :class:`~api.auth.policy.PolicyAuthorizer`
            (Cedar: the community policies plus each workspace's stored custom policies).
        registry: connector catalog; default the process-wide entry-point registry.
        engine: metadata DB engine; default one built from ``settings`` (and disposed on shutdown).
    """
    settings = settings if settings is not None else Settings()
    owns_engine = engine is None
    engine = engine if engine is not None else create_db_engine(settings)
    license = LicenseHolder(
        settings.license_token(),
        keys_file=settings.license_public_keys,
        grace=dt.timedelta(days=settings.license_grace_days),
    )
    state = AppState(
        settings=settings,
        engine=engine,
        registry=registry if registry is not None else get_registry(),
        authorizer=authorizer if authorizer is not None else PolicyAuthorizer(license, DbPolicyStore(engine)),
        metrics=Metrics(),
        license=license,
    )
    state.readiness_checks["database"] = health.database_check
    state.readiness_checks["dagster"] = health.dagster_check

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()
        if owns_engine:
            state.engine.dispose()

    app = FastAPI(
        title="OpenFuse API",
        version=_version(),
        summary="Connections, pipelines, runs, stream state and the audit log of an OpenFuse installation.",
        lifespan=lifespan,
        redoc_url=None,
        # operationId = the route function's name (`create_connection`): stable, readable in clients.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.openfuse = state
    install_error_handlers(app)
    app.add_middleware(BodyGuardMiddleware, max_body_size=settings.max_body_size)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, template=RouteTemplates(app))

    v1 = APIRouter(prefix=API_PREFIX, responses=PROBLEM_RESPONSES)
    for module in (principals, connectors, connections, pipelines, stream_state, runs, audit, governance):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(health.router)
    # The same operations over GraphQL (its own schema: kept out of the OpenAPI document).
    app.include_router(graphql_router(), include_in_schema=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_media_types(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class RouteTemplates:
    """The full path template of a matched route (``/api/v1/connections/{connection_id}``).

    Included routers keep their routes' own paths (without the prefix) in ``scope["route"]``;
    FastAPI's route contexts know the effective path, so map one to the other, rebuilding the
    map when a route is not in it (routes added after startup).
    """

    def __init__(self, app: FastAPI):
        self.app = app
        self._by_route: dict[int, str] = {}

    def __call__(self, route: Any) -> str:
        if route is None:
            return "unmatched"
        found = self._by_route.get(id(route))
        if found is None:
            self._by_route = {
                id(ctx.original_route): str(ctx.path_format) for ctx in iter_route_contexts(self.app.routes)
            }
            found = self._by_route.get(id(route)) or getattr(route, "path_format", None) or "unmatched"
        return found


def _problem_media_types(doc: dict[str, Any]) -> dict[str, Any]:
    """Error responses are ``application/problem+json``, not ``application/json``."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            for status, resp in op.get("responses", {}).items():
                content = resp.get("content", {})
                if status[:1] in ("4", "5") and content and PROBLEM_JSON not in content:
                    # Errors are problem documents whatever the route's own media type is
                    # (JSON for most, JSON Lines for the audit export).
                    resp["content"] = {PROBLEM_JSON: next(iter(content.values()))}
    return doc
