"""The step executor of every OpenFuse job, as the settings select it.

* ``in_process`` (embedded default): the steps run one after the other in the run's process -
  no start-up cost per step, no parallelism.
* ``multiprocess``: one process per step on the run's machine, streams in parallel.
* ``celery`` (scaled default): each step is a Celery task on Redis, run by
  ``openfuse worker`` processes on any machine (:func:`worker_command`).

The Celery executor and its workers must agree on the broker, the result backend and the queue:
both are built from one :class:`~openfuse_dagster.settings.Settings`. Dagster stores an
executor's config with every run, so the broker and backend URLs (which may carry a Redis
password) are given as ``{env: OPENFUSE_CELERY_BROKER}`` references whenever that variable is
set; only a default URL (which holds no secret) is stored as is.

Delivery policy (``config_source``): a step's task is acknowledged when it finishes
(``task_acks_late``). If the process running a step dies (SIGKILL, OOM), Celery reports the
task as failed (``WorkerLostError``), the run fails with ``RUN_EXCEPTION`` and the daemon
re-executes it from the failed step (``run_retries`` in ``dagster.yaml``, bounded). If a whole
worker disappears, Redis hands the unacknowledged task to another worker after
``celery_visibility_timeout`` seconds. Re-running a step is safe: a sync commits its rows and
its stream state in one destination transaction, so a killed step left nothing behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml
from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from openfuse_dagster.settings import BACKEND_ENV, BROKER_ENV, Settings

__all__ = [
    "CELERY_APP",
    "build_executor",
    "celery_config_source",
    "celery_executor_config",
    "worker_command",
    "write_worker_config",
]

#: The Celery app module dagster-celery workers load.
CELERY_APP = "dagster_celery.app"
#: Imported by each worker before it forks its step processes, so a step starts warm.
_PRELOAD = "openfuse_dagster.definitions"


def celery_config_source(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by the executor (task producer) and the workers (consumers)."""
    source: dict[str, Any] = {
        "task_default_queue": settings.celery_queue,
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "result_expires": 86400,
        # dagster-celery's defaults plus the visibility timeout (the dict replaces theirs).
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout,
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    }
    if settings.worker_concurrency is not None:
        source["worker_concurrency"] = settings.worker_concurrency
    return source


def _url_source(env: str, value: str) -> str | dict[str, str]:
    return {"env": env} if os.environ.get(env) == value else value


def celery_executor_config(settings: Settings) -> dict[str, Any]:
    """The ``celery_executor`` config: Redis broker and backend, queue, delivery policy."""
    backend: str | dict[str, str]
    if settings.celery_backend is not None:
        backend = _url_source(BACKEND_ENV, settings.backend_url)
    else:
        backend = _url_source(BROKER_ENV, settings.backend_url)
    return {
        "broker": _url_source(BROKER_ENV, settings.broker_url),
        "backend": backend,
        "config_source": celery_config_source(settings),
    }


def build_executor(settings: Settings) -> ExecutorDefinition:
    """The executor ``settings.executor_name`` names, configured (see the module docstring)."""
    name = settings.executor_name
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    from dagster_celery import celery_executor, core_execution_loop

    # dagster-celery's loop sleeps this long between looks at its steps' results; it reads the
    # module constant on every tick and has no config for it. Only the run process (which builds
    # the executor) runs that loop.
    core_execution_loop.TICK_SECONDS = settings.celery_poll_seconds  # type: ignore[assignment]
    return celery_executor.configured(celery_executor_config(settings), name="openfuse_celery")


def write_worker_config(settings: Settings, path: Path) -> Path:
    """Write the ``-y`` file of ``dagster-celery worker start``: the executor's config block.

    The broker and backend are ``{env: ...}`` references, so the file holds no secret; start the
    worker with :meth:`Settings.to_env` in its environment.
    """
    config = {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV if settings.celery_backend is not None else BROKER_ENV},
        "config_source": celery_config_source(settings),
    }
    from openfuse_dagster.instance import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Celery worker config written by `openfuse worker` (openfuse_dagster.executors).\n"
    write_atomic(path, text + yaml.safe_dump({"execution": {"config": config}}, sort_keys=False))
    return path


def worker_command(
    settings: Settings, config_path: Path, *, name: str | None = None, loglevel: str = "INFO"
) -> list[str]:
    """``dagster-celery worker start`` for the settings' queue, preloading the OpenFuse code."""
    exe = Path(sys.executable).with_name("dagster-celery")
    argv = [
        str(exe) if exe.exists() else "dagster-celery",
        "worker",
        "start",
        "-A",
        CELERY_APP,
        "-y",
        str(config_path),
        "-q",
        settings.celery_queue,
        "-i",
        _PRELOAD,
        "-l",
        loglevel,
    ]
    if name:
        argv += ["-n", name]
    return argv
