"""API pipelines as the YAML files the Dagster code location loads, and how runs map back to them.

The Dagster code location (``openfuse_dagster.definitions``) builds one job per pipeline file in
``$OPENFUSE_PIPELINES_DIR``. The API writes one file per pipeline of its metadata DB there,
``api_<job>.yaml``, rewrites it when the pipeline (or a connection it uses) changes, deletes it
with the pipeline, and asks the webserver to reload the code location
(``reloadRepositoryLocation``). The contract, in full:

* **Job name** :func:`job_name` = ``<pipeline name>__<first 8 hex digits of the workspace id>``:
  pipeline names are unique in a workspace only, job names in the whole code location. The file
  is ``api_<job>.yaml``; the API only ever touches files named ``api_*.yaml``.
* **Step keys**: the job has one op per stream, ``<job>__<table>`` (:func:`step_key`), so a run
  of some streams selects those ops, and a step's results map back to its stream.
* **Secrets** are never written: each secret setting of a connection (a ``SecretStr`` of the
  connector's config, stored encrypted) is written as ``${OPENFUSE_SECRET_<CONNECTION ID HEX>_
  <FIELD>}`` (:func:`secret_env_name`), which the Dagster code location keeps as an ``EnvVar``.
  The Dagster processes get the values as environment variables (:func:`secret_environment`
  computes them; ``openfuse admin secrets-env`` writes them to a 0600 env file). A secret inside
  a setting is named after its path (a REST source's ``auth.token``: ``..._AUTH_TOKEN``).
* **Tags** ``openfuse/pipeline_id``, ``openfuse/workspace`` and ``openfuse/spec_hash`` are added
  to the pipeline's tags in the file; runs the API launches carry ``openfuse/pipeline_id``,
  ``openfuse/workspace`` and ``openfuse/principal``. A run belongs to the pipeline whose current
  job it ran, else to the pipeline its ``openfuse/pipeline_id`` tag names (:func:`owning_pipeline`)
  - so a run started from the Dagster UI belongs to its pipeline too.
* **Freshness**: writing a file schedules a reload in the background (debounced); launching a
  run makes sure first, synchronously, that the code location was loaded after the file was
  last written (:meth:`PipelineExporter.ensure_loaded`). Keep the clocks of the API and the
  Dagster webserver hosts in sync (NTP): the check compares the file's mtime with the time the
  webserver reports for its last load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlmodel import Session, col, select

from api.connection_config import ENCRYPTED
from api.crypto import SecretBox
from api.errors import Problem
from api.models.connection import Connection
from api.models.pipeline import Pipeline
from api.orchestrator import DagsterClient, DagsterError
from openfuse_connectors.spec import PipelineSpec, StreamSpec

__all__ = [
    "FILE_PREFIX",
    "PIPELINE_ID_TAG",
    "PRINCIPAL_TAG",
    "SECRET_ENV_PREFIX",
    "SPEC_HASH_TAG",
    "WORKSPACE_TAG",
    "ExportError",
    "PipelineExporter",
    "job_name",
    "owning_pipeline",
    "parse_job_name",
    "render",
    "secret_env_name",
    "secret_environment",
    "step_key",
]

log = logging.getLogger(__name__)

FILE_PREFIX = "api_"
SECRET_ENV_PREFIX = "OPENFUSE_SECRET_"
PIPELINE_ID_TAG = "openfuse/pipeline_id"
WORKSPACE_TAG = "openfuse/workspace"
#: ``<pipelines dir>/_governance/<workspace id>/``: the workspace's custom policies in force and its
#: principals, for the sync steps' data-plane decisions (``openfuse_dagster/governance.py``).
GOVERNANCE_DIR = "_governance"
PRINCIPAL_TAG = "openfuse/principal"
SPEC_HASH_TAG = "openfuse/spec_hash"

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_WS = re.compile(r"^[0-9a-f]{8}$")


class ExportError(Problem):
    """The pipeline cannot be written as a file the Dagster code location accepts."""

    def __init__(self, pipeline: str, reason: str, *, field: str | None = None):
        self.pipeline = pipeline
        super().__init__(
            422,
            "pipeline-not-exportable",
            f"pipeline {pipeline!r} cannot be handed to Dagster: {reason}",
            title="The pipeline cannot be handed to Dagster",
            extra={"field": field} if field else None,
        )


def job_name(pipeline: Pipeline) -> str:
    """The Dagster job (and exported pipeline) name: ``<name>__<workspace id, 8 hex digits>``."""
    return f"{pipeline.name}__{pipeline.workspace_id.hex[:8]}"


def parse_job_name(job: str) -> tuple[str, str] | None:
    """``(pipeline name, workspace id prefix)`` of a job name made by :func:`job_name`, else None."""
    name, sep, ws = job.rpartition("__")
    if not sep or not name or not _WS.match(ws):
        return None
    return name, ws


def step_key(job: str, stream: StreamSpec) -> str:
    """The step (op) that syncs ``stream`` in ``job``: ``<job>__<table>``."""
    return f"{job}__{_UNSAFE.sub('_', stream.table)}"


def secret_env_name(connection_id: uuid.UUID, field: str) -> str:
    """``OPENFUSE_SECRET_<CONNECTION ID HEX>_<FIELD>``: stable across renames, unique everywhere."""
    return f"{SECRET_ENV_PREFIX}{connection_id.hex.upper()}_{_UNSAFE.sub('_', field).upper()}"


def _file_name(job: str) -> str:
    return f"{FILE_PREFIX}{job}.yaml"


def owning_pipeline(session: Session, job: str, tags: Mapping[str, str]) -> Pipeline | None:
    """The pipeline a Dagster run belongs to, or None (a run of no API pipeline).

    The ``openfuse/pipeline_id`` tag decides when it names a pipeline of the job's workspace
    (runs of a renamed pipeline, and of a name reused later); else the job name does (runs
    started from the Dagster UI or a schedule carry no such tag).
    """
    parsed = parse_job_name(job)
    raw = tags.get(PIPELINE_ID_TAG)
    if raw:
        try:
            tagged = session.get(Pipeline, uuid.UUID(str(raw)))
        except ValueError:
            tagged = None
        if tagged is not None and (parsed is None or tagged.workspace_id.hex.startswith(parsed[1])):
            return tagged
    if parsed is not None:
        name, ws = parsed
        for p in session.exec(select(Pipeline).where(Pipeline.name == name)).all():
            if p.workspace_id.hex.startswith(ws):
                return p
    return None


def _config(pipeline: Pipeline, role: str, conn: Connection) -> dict[str, Any]:
    """The stored config with each secret - at any depth, e.g. a REST source's ``auth.token`` -
    replaced by its environment reference (named after its path: ``..._AUTH_TOKEN``)."""
    del pipeline, role  # every stored secret can be referenced

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            if set(node) == {ENCRYPTED}:
                return "${" + secret_env_name(conn.id, path) + "}"
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    out = walk(conn.config, "")
    assert isinstance(out, dict)
    return out


def _secrets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(path, ciphertext)`` of every secret in a stored config."""
    if isinstance(node, dict):
        if set(node) == {ENCRYPTED}:
            yield path, node[ENCRYPTED]
            return
        for k, v in node.items():
            yield from _secrets(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _secrets(v, f"{path}[{i}]")


def render(session: Session, pipeline: Pipeline) -> str:
    """The YAML text of ``pipeline``'s file (no secret values; see the module docs)."""
    conns = {
        c.id: c
        for c in session.exec(
            select(Connection).where(
                col(Connection.id).in_([pipeline.source_connection_id, pipeline.destination_connection_id])
            )
        ).all()
    }
    job = job_name(pipeline)
    doc: dict[str, Any] = {"name": job}
    for role, cid in (
        ("source", pipeline.source_connection_id),
        ("destination", pipeline.destination_connection_id),
    ):
        conn = conns.get(cid)
        if conn is None:
            raise ExportError(pipeline.name, f"its {role} connection {cid} does not exist")
        doc[role] = {"connector": conn.connector, "config": _config(pipeline, role, conn)}
    doc["schema_drift"] = pipeline.spec.get("schema_drift", "evolve")
    doc["batch_size"] = int(pipeline.spec.get("batch_size", 100_000))
    if pipeline.schedule:
        doc["schedule"] = pipeline.schedule
    doc["streams"] = list(pipeline.spec.get("streams", []))
    if pipeline.owner_id is not None:
        doc["owner"] = str(pipeline.owner_id)  # a principal of governance/principals.yaml
    if pipeline.spec.get("cdc"):
        doc["cdc"] = dict(pipeline.spec["cdc"])
    tags = {
        **{k: v for k, v in pipeline.tags.items() if not k.startswith("openfuse/")},
        PIPELINE_ID_TAG: str(pipeline.id),
        WORKSPACE_TAG: str(pipeline.workspace_id),
    }
    digest = hashlib.sha256(json.dumps([doc, tags], sort_keys=True, default=str).encode()).hexdigest()
    doc["tags"] = {**tags, SPEC_HASH_TAG: digest[:16]}
    try:
        PipelineSpec.model_validate(doc)  # what the code location will do (after ${VAR} expansion)
    except ValidationError as e:
        err = e.errors()[0]
        raise ExportError(pipeline.name, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    header = (
        f"# Written by the OpenFuse API for pipeline {pipeline.id} (workspace {pipeline.workspace_id}).\n"
        "# Do not edit: the API rewrites this file whenever the pipeline changes.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def spec_hash(text: str) -> str | None:
    """The ``openfuse/spec_hash`` tag of a rendered file."""
    m = re.search(r"openfuse/spec_hash: '?([0-9a-f]{16})", text)
    return m.group(1) if m else None


def secret_environment(
    session: Session, box: SecretBox, *, workspace_id: uuid.UUID | None = None
) -> dict[str, str]:
    """The environment variables the Dagster processes need for the connections' secrets.

    Holds secret values: hand it only to a process's environment or a 0600 file.
    """
    stmt = select(Connection)
    if workspace_id is not None:
        stmt = stmt.where(Connection.workspace_id == workspace_id)
    env: dict[str, str] = {}
    for conn in session.exec(stmt).all():
        for path, sealed in _secrets(conn.config):
            env[secret_env_name(conn.id, path)] = box.decrypt(sealed, context=f"connection:{conn.id}:{path}")
    return env


class PipelineExporter:
    """Writes pipeline files into ``folder`` and keeps the Dagster code location loading them.

    Args:
        folder: ``OPENFUSE_PIPELINES_DIR``.
        client: the Dagster webserver; None: files only, no reloads.
        debounce: seconds to gather writes into one background reload.
    """

    def __init__(self, folder: Path, client: DagsterClient | None, *, debounce: float = 1.0):
        self.folder = folder
        self.client = client
        self.debounce = debounce
        self._reload_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._last_reload_start = 0.0
        self._written: dict[str, float] = {}

    def path(self, job: str) -> Path:
        return self.folder / _file_name(job)

    # -- files

    def write(self, session: Session, pipeline: Pipeline) -> tuple[Path, bool]:
        """Write the pipeline's file if its content changed; ``(path, changed)``."""
        text = render(session, pipeline)
        path = self.path(job_name(pipeline))
        try:
            if path.read_text(encoding="utf-8") == text:
                return path, False
        except OSError:
            pass
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".api_", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # atomic: the code location never reads half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._written[path.name] = time.time()
        return path, True

    def _put(self, path: Path, text: str | None) -> bool:
        """Write ``text`` to ``path`` atomically if it changed (None: remove it); whether it did."""
        try:
            if path.read_text(encoding="utf-8") == text:
                return False
        except OSError:
            if text is None:
                return False
        if text is None:
            path.unlink(missing_ok=True)
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".api_", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def write_governance(self, session: Session, workspace_id: uuid.UUID) -> bool:
        """Write the workspace's governance bundle (custom policies in force, principals) for the
        sync steps; whether anything changed. Never holds a secret (attributes only)."""
        from api.models.policy import PolicyVersion
        from api.models.principal import Principal

        text = session.exec(
            select(PolicyVersion.text)
            .where(PolicyVersion.workspace_id == workspace_id)
            .order_by(col(PolicyVersion.version).desc())
            .limit(1)
        ).first()
        principals = {
            str(p.id): {
                "name": p.name,
                **{k: p.attributes[k] for k in ("team", "roles", "region", "clearance") if k in p.attributes},
            }
            for p in session.exec(select(Principal).where(Principal.workspace_id == workspace_id)).all()
        }
        folder = self.folder / GOVERNANCE_DIR / str(workspace_id)
        header = f"# Written by the OpenFuse API for workspace {workspace_id}. Do not edit.\n"
        changed = self._put(
            folder / "principals.yaml",
            header + yaml.safe_dump({"principals": principals}, sort_keys=True, allow_unicode=True),
        )
        changed |= self._put(
            folder / "custom.cedar", (header.replace("#", "//") + text) if text and text.strip() else None
        )
        return changed

    def governance_after_commit(self, session: Session, workspace_id: uuid.UUID) -> None:
        """:meth:`write_governance` after a committed change; never raises."""
        try:
            self.write_governance(session, workspace_id)
        except OSError as e:
            log.warning(
                "could not write the governance bundle of workspace %s (%s)", workspace_id, type(e).__name__
            )

    def remove(self, job: str) -> bool:
        path = self.path(job)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._written[path.name] = time.time()
        return True

    def reconcile(self, session: Session) -> tuple[list[str], list[str], dict[str, str]]:
        """Make the folder match the DB: ``(written, removed, failed {job: reason})``."""
        written, failed = [], {}
        expected = set()
        for p in session.exec(select(Pipeline).order_by(col(Pipeline.created_at))).all():
            job = job_name(p)
            expected.add(_file_name(job))
            try:
                if self.write(session, p)[1]:
                    written.append(job)
            except ExportError as e:
                failed[job] = e.detail
        for ws in session.exec(select(Pipeline.workspace_id).distinct()).all():
            self.write_governance(session, ws)
        removed = []
        if self.folder.is_dir():
            for f in sorted(self.folder.glob(f"{FILE_PREFIX}*.yaml")):
                if f.name not in expected:
                    f.unlink()
                    removed.append(f.name)
        return written, removed, failed

    # -- reloads

    def reload_now(self) -> None:
        """Reload the code location now (one reload at a time per process)."""
        if self.client is None:
            return
        with self._reload_lock:
            self._last_reload_start = time.time()
            self.client.reload()

    def ensure_loaded(self, path: Path) -> None:
        """Reload unless the code location was loaded after ``path`` was last written."""
        if self.client is None:
            raise DagsterError("run pipelines", "no Dagster webserver is configured")
        entry = self.client.location()
        if entry is None:
            raise DagsterError(
                "find the code location", f"the webserver has no code location {self.client.location_name!r}"
            )
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = time.time()
        # Written by this process since its last reload started (the webserver's clock aside).
        stale_here = path.name in self._written and self._written[path.name] >= self._last_reload_start
        if not entry.loaded or entry.error or mtime >= entry.updated or stale_here:
            self.reload_now()

    def request_reload(self) -> None:
        """Schedule a reload in the background (several requests within ``debounce`` make one)."""
        if self.client is None:
            return
        with self._cond:
            if self._stopped:
                return
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="openfuse-dagster-reload", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                # Gather a burst of writes into one reload.
                deadline = time.monotonic() + self.debounce
                while not self._stopped and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._stopped:
                    return
                self._pending = False
            try:
                self.reload_now()
            except Problem as e:
                log.warning("could not reload the Dagster code location: %s", e.detail)
            except Exception as e:  # the reloader must survive anything
                log.warning("could not reload the Dagster code location (%s)", type(e).__name__)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def export_after_commit(
        self, session: Session, pipelines: Iterable[Pipeline], *, removed_jobs: Iterable[str] = ()
    ) -> None:
        """Bring the files of ``pipelines`` up to date after a committed change; never raises (a
        launch re-exports and reports what is wrong)."""
        changed = False
        for job in removed_jobs:
            try:
                changed |= self.remove(job)
            except OSError as e:
                log.warning("could not remove the pipeline file of job %s (%s)", job, type(e).__name__)
        for ws in {p.workspace_id for p in pipelines}:
            self.governance_after_commit(session, ws)
        for p in pipelines:
            try:
                changed |= self.write(session, p)[1]
            except ExportError as e:
                log.warning("%s", e.detail)
            except OSError as e:
                log.warning("could not write the file of pipeline %s (%s)", p.id, type(e).__name__)
        if changed:
            self.request_reload()
