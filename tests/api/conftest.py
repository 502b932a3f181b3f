"""Fixtures of the API tests: a migrated metadata DB and the app (helpers in api_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import NO_DAGSTER, Api, TestClient, make_settings, pg_database
from dagster_stack import Stack, build_stack

from api.app import create_app
from api.migrate import upgrade


@pytest.fixture(autouse=True)
def _no_stray_dagster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings built from the environment write pipeline files under tmp_path and reach no
    Dagster (tests that need one start their own and say so)."""
    monkeypatch.setenv("OPENFUSE_DAGSTER_GRAPHQL_URL", NO_DAGSTER)
    monkeypatch.setenv("OPENFUSE_PIPELINES_DIR", str(tmp_path / "pipelines"))


@pytest.fixture(scope="module")
def module_pg(pg_server: str) -> Iterator[str]:
    yield from pg_database(pg_server)


@pytest.fixture(scope="module")
def module_api(module_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One migrated PostgreSQL metadata DB and app for a whole test module."""
    settings = make_settings(module_pg, tmp_path_factory.mktemp("home"), max_body_size=64 * 1024)
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture
def pg_api(pg_db: str, tmp_path: Path) -> Iterator[Api]:
    """A fresh migrated PostgreSQL metadata DB and app for one test."""
    settings = make_settings(pg_db, tmp_path / "home")
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture(scope="session")
def dagster_stack(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API with a live ``dagster-webserver`` (started once, for the modules that ask; stopped,
    with every process it started, at the end of the session)."""
    with build_stack(pg_server, tmp_path_factory.mktemp("stack")) as stack:
        yield stack
