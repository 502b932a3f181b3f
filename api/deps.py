"""What routes depend on: the app's shared objects and a DB session per request.

Aliases follow the house style (``SessionDep``); the authorization dependency lives in
:mod:`api.auth.dependencies`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from api.auth.authorizer import Authorizer
from api.crypto import SecretBox
from api.metrics import Metrics
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
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    @cached_property
    def secret_box(self) -> SecretBox:
        # Built on first use: in dev it may create the key file, which an app that only serves
        # its OpenAPI document (the snapshot) should not do.
        return SecretBox(self.settings.encryption_secret())


def get_state(request: Request) -> AppState:
    state = request.app.state.openfuse
    assert isinstance(state, AppState)
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    # expire_on_commit off: routes build their response from the rows after committing.
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_registry(state: StateDep) -> Registry:
    return state.registry


def get_secret_box(state: StateDep) -> SecretBox:
    return state.secret_box


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
