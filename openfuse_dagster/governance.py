"""Governance in the sync step: which policies decide a pipeline's streams, and where the decisions
are recorded.

Which gate (:class:`~openfuse_policy.dataplane.DataPlaneGate`) decides a pipeline:

* a pipeline exported by the API (tag ``openfuse/workspace``): its workspace's governance bundle,
  ``$OPENFUSE_PIPELINES_DIR/_governance/<workspace id>/`` - the custom policies in force
  (``custom.cedar``) and the workspace's principals (``principals.yaml``), written by the API
  whenever either changes (``api/pipeline_export.py``). The pipeline's ``owner`` is the principal
  who created it. No bundle yet (an export from before governance): not enforced, and the
  metadata says so;
* any other pipeline: the folder ``OPENFUSE_POLICY_DIR`` when set (workspace ``default``), else
  none (``policy_enforcement: off`` in the metadata).

Where decisions go: the step's log and the materialization metadata always; and, for API
pipelines, the API's append-only audit log - one ``dataset:read`` and one ``dataset:write`` entry
per stream, actor the owner, detail with the decision id, the deciding policies, the obligations,
the pipeline, stream and Dagster run id. That is a documented contract on the metadata DB's
``audit_log`` table (:data:`AUDIT_LOG`; the API's migrations own it), reached with
``OPENFUSE_DATABASE_URL`` or the embedded default ``$OPENFUSE_HOME/openfuse.db`` - not by
importing ``api``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from openfuse_connectors.spec import PipelineSpec, StreamSpec
from openfuse_dagster.settings import Settings
from openfuse_dagster.translator import WORKSPACE_TAG

if TYPE_CHECKING:
    from openfuse_policy.dataplane import DataPlaneGate
    from openfuse_policy.decision import Decision

__all__ = ["AUDIT_LOG", "GOVERNANCE_DIR", "gate_for", "record_decisions"]

log = logging.getLogger("openfuse_dagster")

GOVERNANCE_DIR = "_governance"

#: The columns of the metadata DB's audit log this module writes (the API's migrations own the table).
AUDIT_LOG = sa.Table(
    "audit_log",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("workspace_id", sa.Uuid()),
    sa.Column("actor_id", sa.Uuid()),
    sa.Column("actor_name", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("resource_type", sa.String(50), nullable=False),
    sa.Column("resource_id", sa.String(100)),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("detail", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
)

_GATES: dict[str, tuple[tuple[float, str | None], DataPlaneGate]] = {}
_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()


def _folder_for(pipeline: PipelineSpec, settings: Settings) -> tuple[Path | None, str]:
    ws = pipeline.tags.get(WORKSPACE_TAG)
    if ws:
        return settings.resolved_pipelines_dir / GOVERNANCE_DIR / ws, ws
    if settings.policy_dir is not None:
        return settings.policy_dir.expanduser().resolve(), "default"
    return None, "default"


def gate_for(pipeline: PipelineSpec, settings: Settings | None = None) -> DataPlaneGate | None:
    """The gate deciding ``pipeline`` (see the module doc), rebuilt when a file of its folder or the
    license changes; None when governance is off for it. A broken folder raises (fail closed)."""
    from openfuse_policy.dataplane import DataPlaneGate
    from openfuse_policy.license import load_license, load_public_keys

    settings = settings or Settings()
    root, ws = _folder_for(pipeline, settings)
    if root is None:
        return None
    if not root.is_dir():
        if WORKSPACE_TAG in pipeline.tags:
            return None  # an API pipeline exported before governance bundles existed
        from openfuse_connectors.errors import ConfigError

        raise ConfigError(f"OPENFUSE_POLICY_DIR {root} does not exist", field="OPENFUSE_POLICY_DIR")
    keys = load_public_keys(settings.license_public_keys) if settings.license_public_keys else None
    license = load_license(keys=keys)
    stamp = (max((f.stat().st_mtime for f in root.glob("*")), default=0.0), license.license_id)
    with _LOCK:
        cached = _GATES.get(str(root))
        if cached is not None and cached[0] == stamp:
            return cached[1]
    gate = DataPlaneGate.from_dir(root, license, workspace=ws)
    with _LOCK:
        _GATES[str(root)] = (stamp, gate)
    return gate


def _engine(settings: Settings) -> sa.Engine | None:
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        for plain in ("postgres://", "postgresql://"):
            if url.startswith(plain):
                url = "postgresql+psycopg://" + url[len(plain) :]
    else:
        db = settings.resolved_home / "openfuse.db"
        if not db.exists():
            return None
        url = f"sqlite:///{db.as_posix()}"
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _ENGINES[url] = sa.create_engine(url, pool_pre_ping=True)
    return engine


def record_decisions(
    pipeline: PipelineSpec,
    stream: StreamSpec,
    decisions: list[Decision],
    *,
    run_id: str,
    settings: Settings | None = None,
) -> bool:
    """Append the stream's decisions to the API's audit log (API pipelines only). Returns whether
    they were written; a failure is logged (without the URL) and the step goes on - the decisions
    are in the step's metadata and log either way."""
    settings = settings or Settings()
    ws = pipeline.tags.get(WORKSPACE_TAG)
    if not ws or not decisions:
        return False
    try:
        engine = _engine(settings)
        if engine is None:
            return False
        now = dt.datetime.now(dt.UTC)
        owner = _uuid(pipeline.owner)
        rows = [
            {
                "at": now.replace(tzinfo=None) if engine.dialect.name == "sqlite" else now,
                "workspace_id": uuid.UUID(ws),
                "actor_id": owner,
                "actor_name": f"pipeline {pipeline.name} (owner {pipeline.owner})"[:200],
                "action": d.action,
                "resource_type": "dataset",
                "resource_id": d.resource.split("::", 1)[-1].strip('"')[:100],
                "outcome": "success" if d.allowed else "denied",
                "detail": {
                    "decision_id": d.decision_id,
                    "policies": list(d.determining),
                    "obligations": [str(o) for o in d.obligations],
                    "errors": list(d.errors),
                    "pipeline": pipeline.name,
                    "stream": stream.name,
                    "dagster_run_id": run_id,
                    "policy_version": d.policy_version,
                },
            }
            for d in decisions
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(AUDIT_LOG), rows)
        return True
    except Exception as e:
        log.warning("could not write the policy decisions to the audit log (%s)", type(e).__name__)
        return False


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
