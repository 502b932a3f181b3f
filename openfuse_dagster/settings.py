"""The Dagster side's settings: embedded (no servers) or scaled (PostgreSQL + Celery on Redis).

One :class:`Settings` (pydantic-settings, environment prefix ``OPENFUSE_``) decides everything
the processes of a deployment must agree on: where ``DAGSTER_HOME`` is and what its
``dagster.yaml`` says, which executor the jobs use, and how the Celery executor and its workers
reach Redis. Nothing is read at import time: build ``Settings()`` where it is needed (the CLI
commands, the code location's lazy ``defs``), so tests never need a ``.env``.

============================  ==========================================  ====================
variable                      meaning                                     default
============================  ==========================================  ====================
OPENFUSE_DEPLOYMENT           ``embedded`` or ``scaled``                  embedded
OPENFUSE_HOME                 local state (embedded Dagster storage)      ./.openfuse
OPENFUSE_PIPELINES_DIR        the pipeline YAML files                     ./pipelines
OPENFUSE_DAGSTER_HOME         DAGSTER_HOME of this deployment             $HOME/dagster[-scaled]
OPENFUSE_DAGSTER_PG_URL       scaled: Dagster's PostgreSQL (secret)       the _PG_* variables
OPENFUSE_EXECUTOR             in_process / multiprocess / celery          embedded: in_process,
                                                                          scaled: celery
OPENFUSE_CELERY_BROKER        Redis URL of the Celery broker (secret)     redis://127.0.0.1:6379/0
OPENFUSE_CELERY_BACKEND       Redis URL of the result backend (secret)    the broker
OPENFUSE_CELERY_QUEUE         queue the steps go to and workers read      openfuse
OPENFUSE_CELERY_POLL_SECONDS  how often a run asks Redis for step results 0.1
OPENFUSE_API_PORT             port of the API ``openfuse dev`` starts     8000
OPENFUSE_DASHBOARD_PORT       port of the dashboard ``openfuse dev`` runs 3001
OPENFUSE_WEB_DIR              the dashboard's folder (web/)               this checkout's web/
OPENFUSE_WORKER_CONCURRENCY   step processes per worker                   Celery's (CPU count)
OPENFUSE_RUN_RETRIES          automatic re-executions of a crashed run    2
============================  ==========================================  ====================

(``$HOME`` above is ``OPENFUSE_HOME``.) Scaled mode reads Dagster's PostgreSQL connection from
``OPENFUSE_DAGSTER_PG_URL`` or, when that is unset, from the ``OPENFUSE_DAGSTER_PG_HOST/_PORT/
_USER/_PASSWORD/_DB`` variables that ``deployments/dagster/dagster.yaml`` references.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from openfuse_connectors.errors import ConfigError

__all__ = ["BROKER_ENV", "Deployment", "ExecutorName", "Settings"]

Deployment = Literal["embedded", "scaled"]
ExecutorName = Literal["in_process", "multiprocess", "celery"]

#: The variable the Celery executor config references, so Dagster stores its name, not the URL.
BROKER_ENV = "OPENFUSE_CELERY_BROKER"
BACKEND_ENV = "OPENFUSE_CELERY_BACKEND"


class Settings(BaseSettings):
    """Settings shared by ``openfuse dev``, ``openfuse worker`` and the code location."""

    model_config = SettingsConfigDict(env_prefix="OPENFUSE_", extra="ignore", frozen=True)

    deployment: Deployment = Field(
        default="embedded",
        description="embedded: SQLite storage under OPENFUSE_HOME, steps in the run's process. "
        "scaled: PostgreSQL storage, steps on Celery workers.",
    )
    home: Path = Field(default=Path(".openfuse"), description="Local state folder.")
    pipelines_dir: Path = Field(default=Path("pipelines"), description="Folder of pipeline YAML files.")
    dagster_home: Path | None = Field(
        default=None, description="DAGSTER_HOME (default: <home>/dagster, or <home>/dagster-scaled)."
    )
    dagster_pg_url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:port/db of Dagster's storage (scaled)."
    )
    executor: ExecutorName | None = Field(
        default=None, description="Step executor (default: in_process embedded, celery scaled)."
    )
    celery_broker: SecretStr = Field(default=SecretStr("redis://127.0.0.1:6379/0"))
    celery_backend: SecretStr | None = Field(default=None, description="Default: the broker URL.")
    celery_queue: str = Field(default="openfuse", pattern=r"^[A-Za-z0-9_.-]+$")
    celery_visibility_timeout: int = Field(
        default=3600,
        ge=60,
        description="Seconds before Redis hands a step whose worker vanished to another worker; "
        "keep it above the longest step.",
    )
    celery_poll_seconds: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="How often the run process asks the result backend whether its steps are done "
        "(dagster-celery's own default is 1 s: up to a second lost after each step that unblocks "
        "others, and after the last one).",
    )
    worker_concurrency: int | None = Field(default=None, ge=1, le=256)
    max_concurrent_runs: int = Field(default=10, ge=1)
    run_retries: int = Field(default=2, ge=0, le=10)
    dequeue_interval_seconds: int = Field(default=5, ge=1, le=60)
    policy_dir: Path | None = Field(
        default=None,
        description="Governance folder (`*.cedar` policies + `principals.yaml`): when set, every stream "
        "step asks whether the pipeline's owner may read the source and write the table, and applies "
        "the decision's obligations (mask/hash/drop). Unset: no data-plane enforcement.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="The API's metadata DB (the same OPENFUSE_DATABASE_URL): sync steps append their "
        "policy decisions to its audit log. Default: $OPENFUSE_HOME/openfuse.db when it exists.",
    )
    license_public_keys: Path | None = Field(
        default=None,
        description="JWKS file of trusted license keys (default: the keys shipped with OpenFuse); the "
        "license itself is OPENFUSE_LICENSE or OPENFUSE_LICENSE_FILE, as for the API.",
    )
    webserver_host: str = "127.0.0.1"
    webserver_port: int = Field(default=3000, ge=1, le=65535)
    api_port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="Port of the API `openfuse dev` starts (as for `openfuse api`).",
    )
    dashboard_port: int = Field(
        default=3001, ge=1, le=65535, description="Port of the dashboard `openfuse dev` starts."
    )
    web_dir: Path | None = Field(
        default=None,
        description="The dashboard's folder (web/ with its node_modules); default: web/ of this checkout, if any.",
    )

    # -- derived

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_pipelines_dir(self) -> Path:
        return self.pipelines_dir.expanduser().resolve()

    @property
    def resolved_dagster_home(self) -> Path:
        if self.dagster_home is not None:
            return self.dagster_home.expanduser().resolve()
        sub = "dagster" if self.deployment == "embedded" else "dagster-scaled"
        return self.resolved_home / sub

    @property
    def resolved_web_dir(self) -> Path | None:
        """The dashboard's folder, when there is one (a source checkout, or OPENFUSE_WEB_DIR)."""
        if self.web_dir is not None:
            return self.web_dir.expanduser().resolve()
        here = Path(__file__).resolve().parents[1] / "web"
        return here if (here / "package.json").is_file() else None

    @property
    def executor_name(self) -> ExecutorName:
        if self.executor is not None:
            return self.executor
        return "in_process" if self.deployment == "embedded" else "celery"

    @property
    def broker_url(self) -> str:
        return self.celery_broker.get_secret_value()

    @property
    def backend_url(self) -> str:
        return (self.celery_backend or self.celery_broker).get_secret_value()

    def to_env(self) -> dict[str, str]:
        """These settings as ``OPENFUSE_*`` variables, for the processes a command starts.

        Holds secret values (broker URL, PostgreSQL URL): pass it only as a child's environment.
        """
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Path):
                value = value.expanduser().resolve()
            env[f"OPENFUSE_{name.upper()}"] = str(value)
        return env

    def postgres_env(self) -> dict[str, str]:
        """The ``OPENFUSE_DAGSTER_PG_*`` variables scaled Dagster processes need (secret values).

        From ``dagster_pg_url`` when set, else the variables already in the environment; raises
        :class:`ConfigError` naming what is missing.
        """
        from openfuse_dagster.instance import PG_ENV, postgres_env

        if self.dagster_pg_url is not None:
            return postgres_env(self.dagster_pg_url.get_secret_value())
        missing = [v for k, v in PG_ENV.items() if k != "password" and not os.environ.get(v)]
        if missing:
            raise ConfigError(
                "scaled deployment: set OPENFUSE_DAGSTER_PG_URL (postgresql://user:password@host:port/db) "
                f"or {', '.join(missing)}",
                field="OPENFUSE_DAGSTER_PG_URL",
            )
        return {v: os.environ.get(v, "") for v in PG_ENV.values()}
