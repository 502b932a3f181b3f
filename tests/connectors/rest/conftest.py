"""Fixtures: the test API (``rest_server``) served once per session by uvicorn in a background
thread on a free loopback port, reset before each test; and a registry that knows ``rest``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from rest_server import Api, ApiState, build_app

from openfuse_connectors.builtin.rest import CONNECTOR
from openfuse_connectors.registry import Registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def _server() -> Iterator[Api]:
    import uvicorn

    state = ApiState()
    state.reset()
    port = _free_port()
    config = uvicorn.Config(
        build_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="rest-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test API did not start", pytrace=False)
        time.sleep(0.01)
    try:
        yield Api(f"http://127.0.0.1:{port}", state)
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def api(_server: Api) -> Api:
    _server.state.reset()
    return _server


@pytest.fixture
def registry() -> Registry:
    """The installed connectors plus ``rest`` (until pyproject.toml declares its entry point)."""
    reg = Registry.from_entry_points()
    reg.add(CONNECTOR, origin="openfuse_connectors.builtin.rest")
    return reg
