"""The Dagster instance: embedded (SQLite, no server) or scaled (PostgreSQL via dagster-postgres).

* Embedded: :func:`ensure_embedded_dagster_home` writes a ``dagster.yaml`` with SQLite storage
  under ``$OPENFUSE_HOME/dagster`` (default ``./.openfuse/dagster``) and returns that folder, to
  be used as ``DAGSTER_HOME``.
* Scaled: ``deployments/dagster/dagster.yaml`` (PostgreSQL for runs, event logs and schedules;
  queued run coordinator) is copied into ``$DAGSTER_HOME`` as is - its connection values are
  ``{env: OPENFUSE_DAGSTER_PG_*}`` references - or ``dagster.yaml.template`` is rendered there
  with :func:`write_instance_yaml` to set limits from the environment. :func:`postgres_env`
  turns a ``postgresql://`` URL into the ``OPENFUSE_DAGSTER_PG_*`` variables.

:func:`prepare_dagster_home` does whichever of the two :class:`~openfuse_dagster.settings.Settings`
selects, and :func:`dagster_process_env` is the environment every Dagster process of the
deployment (webserver, daemon, Celery workers) is started with.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import yaml
from dagster import DagsterInstance

from openfuse_connectors.errors import ConfigError

if TYPE_CHECKING:
    from openfuse_dagster.settings import Settings

__all__ = [
    "DEFAULT_TEMPLATE",
    "OPENFUSE_HOME_ENV",
    "PG_ENV",
    "dagster_process_env",
    "embedded_instance_config",
    "ensure_embedded_dagster_home",
    "load_instance",
    "openfuse_home",
    "postgres_env",
    "prepare_dagster_home",
    "render_instance_yaml",
    "write_instance_yaml",
]

OPENFUSE_HOME_ENV = "OPENFUSE_HOME"
#: The environment variables the PostgreSQL instance config reads, by connection part.
PG_ENV = {
    "host": "OPENFUSE_DAGSTER_PG_HOST",
    "port": "OPENFUSE_DAGSTER_PG_PORT",
    "user": "OPENFUSE_DAGSTER_PG_USER",
    "password": "OPENFUSE_DAGSTER_PG_PASSWORD",
    "db": "OPENFUSE_DAGSTER_PG_DB",
}
#: The template in a source checkout (deployments are not part of the installed package).
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "deployments" / "dagster" / "dagster.yaml.template"

_PLACEHOLDER = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def openfuse_home() -> Path:
    """``$OPENFUSE_HOME``, default ``./.openfuse`` (the Makefile sets it to the checkout's)."""
    return Path(os.environ.get(OPENFUSE_HOME_ENV) or ".openfuse").expanduser().resolve()


def embedded_instance_config(dagster_home: Path) -> dict[str, Any]:
    """Instance settings of the embedded mode: SQLite storage in ``dagster_home``, no telemetry."""
    return {
        "storage": {"sqlite": {"base_dir": str(dagster_home)}},
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": 4},
        },
        "run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False},
        "python_logs": {"managed_python_loggers": ["openfuse_connectors", "openfuse_dagster"]},
        "telemetry": {"enabled": False},
    }


def ensure_embedded_dagster_home(home: Path | None = None) -> Path:
    """Create ``<home>/dagster/dagster.yaml`` (SQLite) unless it exists; return that folder.

    An existing ``dagster.yaml`` is left alone, so local edits survive.
    """
    dagster_home = (home or openfuse_home()) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if not target.exists():
        text = "# Embedded OpenFuse Dagster instance (written by openfuse_dagster.instance).\n"
        text += yaml.safe_dump(embedded_instance_config(dagster_home), sort_keys=False)
        write_atomic(target, text)
    return dagster_home


def render_instance_yaml(template: str, env: Mapping[str, str] | None = None) -> str:
    """Fill ``${VAR}`` / ``${VAR:-default}`` placeholders; ``$${...}`` stays literal ``${...}``."""
    values = os.environ if env is None else env

    def repl(m: re.Match[str]) -> str:
        escaped, name, default = m.group(1), m.group(2), m.group(3)
        if escaped:
            return m.group(0)[1:]
        if name in values:
            return values[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", field=name)

    return _PLACEHOLDER.sub(repl, template)


def write_instance_yaml(
    template: Path = DEFAULT_TEMPLATE,
    dagster_home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Render ``template`` into ``<dagster_home>/dagster.yaml`` (default ``$DAGSTER_HOME``)."""
    home = dagster_home or Path(os.environ.get("DAGSTER_HOME") or "")
    if not str(home):
        raise ConfigError("DAGSTER_HOME is not set; pass dagster_home", field="DAGSTER_HOME")
    text = render_instance_yaml(template.read_text(encoding="utf-8"), env)
    yaml.safe_load(text)  # a rendered value that breaks the YAML fails here, not in Dagster
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    write_atomic(target, text)
    return target


def write_atomic(path: Path, text: str) -> None:
    """Replace a file whole: processes starting meanwhile read the old text or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def postgres_env(url: str) -> dict[str, str]:
    """``postgresql://user:password@host:port/db`` -> the ``OPENFUSE_DAGSTER_PG_*`` variables."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError(
            "expected a postgresql://user[:password]@host[:port]/database URL", field="url", value=None
        )
    return {
        PG_ENV["host"]: parts.hostname or "localhost",
        PG_ENV["port"]: str(parts.port or 5432),
        PG_ENV["user"]: unquote(parts.username or "postgres"),
        PG_ENV["password"]: unquote(parts.password or ""),
        PG_ENV["db"]: parts.path.strip("/"),
    }


def load_instance(dagster_home: Path) -> DagsterInstance:
    """The instance described by ``<dagster_home>/dagster.yaml`` (storage tables created if needed)."""
    return DagsterInstance.from_config(str(dagster_home))


def prepare_dagster_home(settings: Settings, template: Path = DEFAULT_TEMPLATE) -> Path:
    """Write the ``dagster.yaml`` the settings select into their DAGSTER_HOME; return the folder.

    Embedded: SQLite storage there (an existing file is kept, see
    :func:`ensure_embedded_dagster_home`). Scaled: ``template`` rendered with the settings'
    limits; rewritten on every call so a changed setting takes effect. The PostgreSQL connection
    stays ``{env: ...}`` references: start the processes with :func:`dagster_process_env`.
    """
    home = settings.resolved_dagster_home
    if settings.deployment == "embedded":
        if settings.dagster_home is None:
            return ensure_embedded_dagster_home(settings.resolved_home)
        home.mkdir(parents=True, exist_ok=True)
        target = home / "dagster.yaml"
        if not target.exists():
            text = "# Embedded OpenFuse Dagster instance (written by openfuse_dagster.instance).\n"
            write_atomic(target, text + yaml.safe_dump(embedded_instance_config(home), sort_keys=False))
        return home
    settings.postgres_env()  # fail now, naming the missing variable, not in every process later
    env = {
        **os.environ,
        "OPENFUSE_DAGSTER_MAX_CONCURRENT_RUNS": str(settings.max_concurrent_runs),
        "OPENFUSE_DAGSTER_RUN_RETRIES": str(settings.run_retries),
        "OPENFUSE_DAGSTER_DEQUEUE_INTERVAL": str(settings.dequeue_interval_seconds),
    }
    write_instance_yaml(template, home, env)
    return home


def dagster_process_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) plus DAGSTER_HOME, the pipelines folder and, when scaled,
    the PostgreSQL variables: what every process of the deployment needs to agree on."""
    env = dict(os.environ if base is None else base)
    env.update(settings.to_env())
    env["DAGSTER_HOME"] = str(settings.resolved_dagster_home)
    env["OPENFUSE_PIPELINES_DIR"] = str(settings.resolved_pipelines_dir)
    env[OPENFUSE_HOME_ENV] = str(settings.resolved_home)
    # Console scripts of this environment first: dagster-celery runs `celery` from PATH.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join(filter(None, [bin_dir, env.get("PATH")]))
    if settings.deployment == "scaled":
        env.update(settings.postgres_env())
    return env
