"""Pipelines as stored: connection references resolved, validated against the connector catalog.

A request names its source and destination by connection name or id; the stored ``spec`` is the
shared :class:`~openfuse_connectors.spec.PipelineSpec` document with those references as ids.
Validation is what can be known without touching the source: the connections exist in the
workspace and can play their role, the streams obey the spec's rules (cursor for incremental
modes, unique destination tables), transforms are registered and their options valid, the
schedule looks like cron. Unknown streams or columns are fine until ``discover``. Every error
names the field (``source.connection``, ``streams[0].cursor_field``,
``streams[1].transforms[0].type``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from api.connection_config import unseal
from api.crypto import SecretBox
from api.errors import FieldError, Problem, loc_to_field, safe_value
from api.models.connection import Connection
from api.models.pipeline import Pipeline
from openfuse_connectors.cdc.options import CdcOptions
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, SchemaDrift, StreamSpec

__all__ = ["build_spec", "resolve_connection", "runtime_spec", "validate_schedule"]

_CRON_FIELD = r"[0-9A-Za-z*/,\-?LW#]+"
_CRON = re.compile(rf"^{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}$")
_CRON_ALIASES = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"})


def resolve_connection(session: Session, workspace_id: uuid.UUID, ref: str, *, field: str) -> Connection:
    """The connection named or identified by ``ref`` in the workspace, or a 422 naming ``field``."""
    stmt = select(Connection).where(Connection.workspace_id == workspace_id)
    try:
        stmt = stmt.where(Connection.id == uuid.UUID(ref))
    except ValueError:
        stmt = stmt.where(Connection.name == ref)
    row = session.exec(stmt).first()
    if row is None:
        # Connections of other workspaces are "not found" too: no hint that they exist.
        raise Problem.invalid(field, f"no connection {ref!r} in this workspace", value=ref)
    return row


def validate_schedule(schedule: str | None) -> None:
    if schedule is None:
        return
    s = schedule.strip()
    if s in _CRON_ALIASES or _CRON.match(s):
        return
    raise Problem.invalid(
        "schedule",
        "not a cron expression (five fields, e.g. `0 * * * *`, or @hourly/@daily/...)",
        value=schedule,
    )


def build_spec(
    registry: Registry,
    *,
    name: str,
    source: Connection,
    destination: Connection,
    streams: list[StreamSpec],
    schema_drift: SchemaDrift,
    batch_size: int,
    schedule: str | None,
    tags: dict[str, str],
    cdc: CdcOptions | None = None,
) -> dict[str, Any]:
    """Validate a pipeline and return the ``spec`` document to store."""
    errors: list[FieldError] = []
    for role, conn_row, ok in (
        ("source", source, lambda c: c.extractor is not None),
        ("destination", destination, lambda c: c.loader is not None),
    ):
        conn = registry.connectors.get(conn_row.connector)
        if conn is None or not ok(conn):
            what = f"connector {conn_row.connector!r}" + (
                " is not installed" if conn is None else f" cannot be a {role}"
            )
            errors.append(
                FieldError(field=f"{role}.connection", message=f"connection {conn_row.name!r}: {what}")
            )
    validate_schedule(schedule)
    doc = {
        "name": name,
        "source": {"connector": source.connector, "config": {}},
        "destination": {"connector": destination.connector, "config": {}},
        "schema_drift": schema_drift.value,
        "streams": [s.model_dump(mode="json") for s in streams],
        "schedule": schedule,
        "tags": tags,
        "batch_size": batch_size,
    }
    if cdc is not None:
        doc["cdc"] = cdc.model_dump(mode="json", exclude_defaults=True)
    try:
        spec = PipelineSpec.model_validate(doc)
    except ValidationError as e:
        # A whole-spec rule (destination tables unique across streams) has no location: it is
        # about the streams, so that is the field it names.
        errors += [
            FieldError(
                field=loc_to_field(err["loc"]) or _whole_spec_field(err), message=str(err["msg"]), value=None
            )
            for err in e.errors()
        ]
        spec = None
    if spec is not None:
        errors += _transform_errors(registry, spec)
    if errors:
        shown = "; ".join(f"{x.field}: {x.message}" for x in errors[:3])
        raise Problem(422, "validation-error", shown, errors=errors)
    return {
        "name": name,
        "source": {"connection": str(source.id)},
        "destination": {"connection": str(destination.id)},
        "schema_drift": schema_drift.value,
        "streams": doc["streams"],
        "batch_size": batch_size,
        **({"cdc": doc["cdc"]} if "cdc" in doc else {}),
    }


def _whole_spec_field(err: Any) -> str:
    """The field a whole-spec rule names (``PipelineSpec`` raises errors that carry one), else
    ``streams`` - what most of those rules are about."""
    field = getattr((err.get("ctx") or {}).get("error"), "field", None)
    return str(field) if field else "streams"


def _transform_errors(registry: Registry, spec: PipelineSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, stream in enumerate(spec.streams):
        for j, t in enumerate(stream.transforms):
            where = f"streams[{i}].transforms[{j}]"
            conn = registry.connectors.get(t.type)
            if conn is None or conn.transformer is None:
                known = ", ".join(sorted(n for n, c in registry.connectors.items() if c.transformer))
                errors.append(
                    FieldError(
                        field=f"{where}.type",
                        message=f"unknown transform {t.type!r}; installed: {known}",
                        value=safe_value("type", t.type),
                    )
                )
                continue
            # Validate the options without instantiating: a transform's __init__ may import user code.
            model = conn.transformer.options_model
            if model is None:
                continue
            try:
                model.model_validate(t.options)
            except ValidationError as e:
                errors += [
                    FieldError(
                        field=f"{where}.options.{loc_to_field(err['loc'])}".rstrip("."),
                        message=str(err["msg"]),
                    )
                    for err in e.errors()
                ]
    return errors


def runtime_spec(session: Session, box: SecretBox, pipeline: Pipeline) -> PipelineSpec:
    """The :class:`PipelineSpec` a run needs: connections replaced by their decrypted configs.

    For the orchestrator only (part 2 hands it to Dagster); never put its result in a response.
    """
    doc = dict(pipeline.spec)
    for role, cid in (
        ("source", pipeline.source_connection_id),
        ("destination", pipeline.destination_connection_id),
    ):
        conn = session.get(Connection, cid)
        if conn is None:
            raise Problem.not_found("connection", cid)
        doc[role] = {"connector": conn.connector, "config": unseal(conn.config, box, conn.id)}
    doc["name"] = pipeline.name
    doc["schedule"] = pipeline.schedule
    doc["tags"] = pipeline.tags
    doc["owner"] = str(pipeline.owner_id) if pipeline.owner_id else None
    return PipelineSpec.model_validate(doc)
