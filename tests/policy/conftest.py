"""Fixtures for the governance tests (helpers live in policy_support.py)."""

from __future__ import annotations

import pytest
from policy_support import ctx_for, world_store

from openfuse_policy.decision import Context
from openfuse_policy.entities import EntityStore


@pytest.fixture(scope="session")
def world() -> EntityStore:
    return world_store()


@pytest.fixture
def ctx() -> Context:
    return ctx_for()
