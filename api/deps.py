"""What routes depend on: the app's shared objects and a DB session per request.

Aliases follow the house style (``SessionDep``); the authorization dependency lives in
:mod:`api.auth.dependencies`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.auth.authorizer import Authorizer
from api.auth.policy import LicenseHolder
from api.crypto import SecretBox
from api.metrics import Metrics
from api.orchestrator import DagsterClient
from api.pipeline_export import PipelineExporter
from api.settings import Settings
from openfuse_connectors.registry import Registry

__all__ = [
    "AppState",
    "ReadinessCheck",
    "RegistryDep",
    "SecretBoxDep",
    "SessionDep",
    "SettingsDep",
    "StateDep",
]

#: A readiness probe: returns None when fine, or a short reason (no secrets) when not.
ReadinessCheck = Callable[["AppState"], str | None]


@dataclass
class AppState:
    """Everything one app instance shares between requests."""

    settings: Settings
    engine: Engine
    registry: Registry
    authorizer: Authorizer
    metrics: Metrics
    license: LicenseHolder
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    @cached_property
    def secret_box(self) -> SecretBox:
        # Built on first use: in dev it may create the key file, which an app that only serves
        # its OpenAPI document (the snapshot) should not do.
        return SecretBox(self.settings.encryption_secret())

    @cached_property
    def read_engine(self) -> Engine:
        """The engine in autocommit, for requests that only read (same pool)."""
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @cached_property
    def dagster(self) -> DagsterClient:
        """The Dagster webserver's GraphQL API (runs, code location reloads, readiness)."""
        s = self.settings
        return DagsterClient(
            s.dagster_graphql_url,
            location=s.dagster_location,
            repository=s.dagster_repository,
            timeout=s.dagster_timeout,
        )

    @cached_property
    def exporter(self) -> PipelineExporter:
        """Writes the pipelines into the folder Dagster loads, and reloads it."""
        return PipelineExporter(self.settings.pipelines_dir.expanduser().resolve(), self.dagster)

    def close(self) -> None:
        """Stop what the app started (on shutdown). They are made again if the app is used after
        (an app can go through several lifespans, e.g. under test clients)."""
        exporter = self.__dict__.pop("exporter", None)
        if exporter is not None:
            exporter.stop()
        dagster = self.__dict__.pop("dagster", None)
        if dagster is not None:
            dagster.close()


# The dependencies that do no I/O are `async def`: FastAPI runs a sync dependency in the thread
# pool, and each such hop costs more CPU than these functions (see bench/README.md, API load).


async def get_state(request: Request) -> AppState:
    state = request.app.state.openfuse
    assert isinstance(state, AppState)
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(request: Request, state: StateDep) -> AsyncIterator[Session]:
    # expire_on_commit off: routes build their response from the rows after committing. A GET
    # only reads (reads are not audited), so it runs in autocommit: no BEGIN and ROLLBACK round
    # trips. Making a session does no I/O; closing it may (it returns its connection): a thread.
    bind = state.read_engine if request.method in ("GET", "HEAD") else state.engine
    session = Session(bind, expire_on_commit=False)
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_registry(state: StateDep) -> Registry:
    return state.registry


async def get_secret_box(state: StateDep) -> SecretBox:
    return state.secret_box


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
