"""Helpers of the Dagster process tests, importable by the step processes too (PYTHONPATH).

Keep the imports light: Celery workers import the transforms below in every step process.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")


def hold(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Python transform: on a batch of rows with ``id > 1000`` (so earlier batches are already in
    the load transaction), while ``$OF_HOLD_DIR/hold`` exists, write this process's pid to
    ``$OF_HOLD_DIR/reached`` and wait: a step caught mid-load."""
    import pyarrow.compute as pc

    if batch.num_rows == 0 or pc.min(batch.column("id")).as_py() <= 1000:
        return batch
    folder = Path(os.environ["OF_HOLD_DIR"])
    if (folder / "hold").exists():
        (folder / "reached").write_text(str(os.getpid()))
        deadline = time.monotonic() + 90
        while (folder / "hold").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return batch


def pause(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Python transform: a data batch takes ``$OF_PAUSE_SECONDS`` (default 1.5) at least, so
    parallel steps visibly overlap."""
    if batch.num_rows:
        time.sleep(float(os.environ.get("OF_PAUSE_SECONDS", "1.5")))
    return batch


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One POST to the webserver's /graphql; fails on GraphQL errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    assert not out.get("errors"), out["errors"]
    return dict(out["data"])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def location_loaded(url: str) -> bool:
    """Whether the webserver has finished loading its code locations (successfully)."""
    try:
        data = graphql(
            url,
            "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }",
        )
    except OSError:
        return False
    entries = data["workspaceOrError"]["locationEntries"]
    if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
        return False
    errors = [
        e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"
    ]
    assert not errors, errors
    return True
