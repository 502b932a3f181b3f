"""Python transforms the Dagster run workers of the API tests import (tests/api is on their
PYTHONPATH). Keep imports light: each run worker imports this module."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa


def hold(batch: pa.RecordBatch) -> pa.RecordBatch:
    """While the file ``$OPENFUSE_TEST_HOLD`` exists (at most two minutes), wait: a run that is
    surely still going when the test cancels it. A step that waits says so in the file
    ``$OPENFUSE_TEST_HOLD.reached.<pid>``."""
    marker = os.environ.get("OPENFUSE_TEST_HOLD")
    deadline = time.monotonic() + 120
    if batch.num_rows and marker and Path(marker).exists():
        Path(f"{marker}.reached.{os.getpid()}").touch()
    while batch.num_rows and marker and Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return batch
