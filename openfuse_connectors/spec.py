"""The pipeline contract shared by the CLI, Dagster and the API.

A pipeline file (YAML) looks like::

    name: orders_to_warehouse
    source:      {connector: postgres, config: {dsn: "postgresql://..."}}
    destination: {connector: postgres, config: {dsn: "postgresql://...", schema: analytics}}
    schema_drift: evolve
    streams:
      - name: public.orders
        mode: incremental_dedupe
        cursor_field: updated_at
        primary_key: [id]

A change-data-capture pipeline (PostgreSQL source only) marks every stream ``mode: cdc`` and may
tune the capture in a ``cdc:`` block (:class:`~openfuse_connectors.cdc.options.CdcOptions`)::

    name: shop_cdc
    source:      {connector: postgres, config: {dsn: "postgresql://..."}}
    destination: {connector: postgres, config: {dsn: "postgresql://...", schema: mirror}}
    cdc: {deletes: soft}
    streams:
      - {name: public.orders, mode: cdc}

CDC streams are not run by the batch engine (``openfuse run``) but by the CDC runner
(``openfuse cdc run``, or the pipeline's Dagster CDC job).

``${VAR}`` and ``${VAR:-default}`` in string values are expanded from the environment when the
file is loaded; the expanded values are never printed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from openfuse_connectors.cdc.options import CdcOptions
from openfuse_connectors.errors import PipelineSpecError

__all__ = [
    "CDC_SOURCE",
    "ConnectorRef",
    "FreshnessSpec",
    "PartitionSpec",
    "PipelineSpec",
    "RetrySpec",
    "SchemaDrift",
    "StreamSpec",
    "SyncMode",
    "TransformSpec",
    "expand_env",
    "load_pipeline",
    "parse_pipeline",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class SyncMode(StrEnum):
    FULL_REFRESH_OVERWRITE = "full_refresh_overwrite"
    FULL_REFRESH_APPEND = "full_refresh_append"
    INCREMENTAL_APPEND = "incremental_append"
    INCREMENTAL_DEDUPE = "incremental_dedupe"
    #: Change data capture (PostgreSQL logical decoding), run by the CDC runner, not the engine.
    CDC = "cdc"

    @property
    def incremental(self) -> bool:
        return self in (SyncMode.INCREMENTAL_APPEND, SyncMode.INCREMENTAL_DEDUPE)


#: The one source connector a ``cdc`` stream can read from.
CDC_SOURCE = "postgres"


class _FieldProblem(ValueError):
    """A whole-model check that knows which field is wrong (pydantic reports it at the top)."""

    def __init__(self, message: str, field: str, value: Any = None):
        super().__init__(message)
        self.field = field
        self.value = value


class SchemaDrift(StrEnum):
    EVOLVE = "evolve"
    FREEZE = "freeze"
    QUARANTINE = "quarantine"


class ConnectorRef(BaseModel):
    """A connector by registry name plus its (not yet validated) config mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str
    config: dict[str, Any] = Field(default_factory=dict)


class TransformSpec(BaseModel):
    """One transform step: a registered Transformer name plus its options.

    Written either as ``{type: hash, options: {columns: [email]}}`` or flat as
    ``{type: hash, columns: [email]}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_options(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" in data:
            extra = {k: v for k, v in data.items() if k not in ("type", "options")}
            if extra:
                return {"type": data["type"], "options": {**dict(data.get("options") or {}), **extra}}
        return data


class StreamSpec(BaseModel):
    """One source stream and how it lands in the destination."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Source stream name, e.g. `public.orders` or a file glob's stream name.")
    mode: SyncMode = SyncMode.FULL_REFRESH_OVERWRITE
    cursor_field: str | None = None
    primary_key: tuple[str, ...] = ()
    columns: tuple[str, ...] | None = Field(default=None, description="Selected columns; all when unset.")
    destination_table: str | None = None
    transforms: tuple[TransformSpec, ...] = ()
    passthrough: bool = Field(
        default=True,
        description="Allow the byte-level pass-through when source and destination support it and "
        "no row transform is needed. Set false to force the decoded Arrow path.",
    )
    column_tags: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Governance tags per source column, e.g. `{email: [pii]}`. Policies match them "
        "(`resource.column_tags`) and their obligations mask, hash or drop the tagged columns.",
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("stream name must not be empty")
        return v

    @field_validator("column_tags")
    @classmethod
    def _tags(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for col, tags in v.items():
            for t in tags:
                if not _TAG.match(t):
                    raise ValueError(
                        f"column_tags.{col}: tag {t!r} must be lowercase letters, digits, _ or -"
                    )
        return v

    def columns_tagged(self, tag: str) -> tuple[str, ...]:
        """Source columns carrying `tag`, in declaration order."""
        return tuple(c for c, tags in self.column_tags.items() if tag in tags)

    @field_validator("destination_table")
    @classmethod
    def _dest_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(
                f"destination_table {v!r} must be a plain identifier (letters, digits, underscore)"
            )
        return v

    @model_validator(mode="after")
    def _mode_needs(self) -> StreamSpec:
        if self.mode.incremental and not self.cursor_field:
            raise ValueError(f"mode {self.mode.value} needs cursor_field")
        if self.mode is SyncMode.INCREMENTAL_DEDUPE and not self.primary_key:
            raise ValueError("mode incremental_dedupe needs primary_key")
        return self

    @property
    def state_key(self) -> str:
        """Key of this stream's state: the stream name, plus the table when it is renamed."""
        return self.name if self.destination_table is None else f"{self.name}->{self.destination_table}"

    @property
    def table(self) -> str:
        """The destination table name: `destination_table`, else the last part of the stream name."""
        if self.destination_table:
            return self.destination_table
        return default_table(self.name)


class RetrySpec(BaseModel):
    """How a failed step of the pipeline is retried (Dagster's ``RetryPolicy``).

    Retrying is safe by construction: a load commits data and state together or not at all.
    Fatal errors (bad config, frozen schema drift) are never retried.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(default=2, ge=0, le=20, description="0 turns retries off.")
    delay_seconds: float = Field(default=30.0, ge=0, le=86_400, description="Wait before the first retry.")
    backoff: Literal["none", "linear", "exponential"] = Field(
        default="exponential", description="How the delay grows per attempt."
    )
    jitter: Literal["none", "full", "plus_minus"] = Field(
        default="plus_minus", description="Random spread of the delay, so retries do not stampede."
    )


class PartitionSpec(BaseModel):
    """Time partitions of an incremental pipeline: each partition is a cursor range ``[start, end)``.

    Give ``granularity`` (hourly, daily, weekly, monthly) or a ``cron`` expression whose ticks
    bound the partitions, not both.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["time"] = "time"
    granularity: Literal["hourly", "daily", "weekly", "monthly"] | None = None
    cron: str | None = Field(default=None, description="e.g. `0 */6 * * *` for 6-hour partitions.")
    start: str = Field(description="First partition, ISO date (or date and time), e.g. 2024-01-01.")
    end: str | None = Field(default=None, description="No partition starts at or after it (ISO).")
    end_offset: int = Field(default=0, ge=0, description="1: also offer the partition in progress.")
    timezone: str = Field(default="UTC", description="IANA time zone of the partition bounds.")
    cursor_field: str | None = Field(
        default=None,
        description="The column the ranges apply to; when set, every stream must use it as cursor_field.",
    )

    @field_validator("start", "end")
    @classmethod
    def _iso(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                dt.datetime.fromisoformat(v)
            except ValueError:
                raise ValueError(
                    f"{v!r} must be an ISO date such as 2024-01-01 (or 2024-01-01T06:00)"
                ) from None
        return v

    @model_validator(mode="after")
    def _one_rule(self) -> PartitionSpec:
        if (self.granularity is None) == (self.cron is None):
            raise _FieldProblem("give granularity or cron (exactly one)", "granularity")
        return self


_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> dt.timedelta:
    """``90m``, ``6h``, ``1d``, ``1h30m``, ``2w`` -> a timedelta (ValueError naming the text)."""
    m = _DURATION.match(text.strip().replace(" ", "")) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration such as 90m, 6h, 1d or 1h30m")
    w, d, h, mi, s = (int(g or 0) for g in m.groups())
    return dt.timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


class FreshnessSpec(BaseModel):
    """When the pipeline's tables count as stale: a Dagster freshness check per table.

    Without this block, a scheduled pipeline still gets one: ``max_lag`` twice its longest
    interval between schedule ticks (a run may be late once, not twice).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_lag: str = Field(description="How old the last successful sync may be, e.g. `90m`, `6h`, `1d`.")
    deadline_cron: str | None = Field(
        default=None,
        description="Evaluate against deadlines: at each tick of this cron the tables must have synced "
        "within `max_lag` before it (e.g. `0 7 * * *`: fresh by 07:00 every day).",
    )
    severity: Literal["warn", "error"] = Field(default="warn", description="Of the failed check.")

    @field_validator("max_lag")
    @classmethod
    def _duration(cls, v: str) -> str:
        if parse_duration(v) <= dt.timedelta(0):
            raise ValueError(f"{v!r} must be longer than zero")
        return v

    @property
    def max_lag_delta(self) -> dt.timedelta:
        return parse_duration(self.max_lag)


class PipelineSpec(BaseModel):
    """A whole pipeline: source, destination, drift policy and streams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: ConnectorRef
    destination: ConnectorRef
    schema_drift: SchemaDrift = SchemaDrift.EVOLVE
    streams: tuple[StreamSpec, ...] = Field(min_length=1)
    schedule: str | None = Field(default=None, description="Cron schedule, used by Dagster.")
    owner: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    batch_size: int = Field(default=100_000, ge=1, le=10_000_000)
    cdc: CdcOptions | None = Field(
        default=None, description="Change data capture settings; only with `mode: cdc` streams."
    )
    retries: RetrySpec | None = Field(default=None, description="Step retries (default: 2, exponential).")
    freshness: FreshnessSpec | None = Field(
        default=None,
        description="When the tables count as stale (default: from the schedule), used by Dagster.",
    )
    partitions: PartitionSpec | None = Field(
        default=None, description="Time partitions (incremental streams only), used by Dagster."
    )

    @field_validator("name")
    @classmethod
    def _pipeline_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"pipeline name {v!r} must be letters, digits and underscores, not starting with a digit"
            )
        return v

    @model_validator(mode="after")
    def _unique_tables(self) -> PipelineSpec:
        seen: dict[str, str] = {}
        for s in self.streams:
            if s.table in seen:
                raise ValueError(f"streams {seen[s.table]!r} and {s.name!r} both load into table {s.table!r}")
            seen[s.table] = s.name
        return self

    @model_validator(mode="after")
    def _partition_rules(self) -> PipelineSpec:
        p = self.partitions
        if p is None:
            return self
        for i, s in enumerate(self.streams):
            if not s.mode.incremental:
                raise _FieldProblem(
                    f"every stream of a partitioned pipeline must be incremental (a partition is a cursor "
                    f"range); stream {s.name!r} is {s.mode.value}",
                    f"streams[{i}:{s.name}].mode",
                    s.mode.value,
                )
            if p.cursor_field is not None and s.cursor_field != p.cursor_field:
                raise _FieldProblem(
                    f"partitions.cursor_field is {p.cursor_field!r} but stream {s.name!r} uses "
                    f"{s.cursor_field!r}",
                    f"streams[{i}:{s.name}].cursor_field",
                    s.cursor_field,
                )
        return self

    @model_validator(mode="after")
    def _cdc_rules(self) -> PipelineSpec:
        cdc = [s for s in self.streams if s.mode is SyncMode.CDC]
        if not cdc:
            if self.cdc is not None:
                raise _FieldProblem("a cdc block needs streams with mode cdc", "cdc")
            return self
        for i, s in enumerate(self.streams):
            if s.mode is not SyncMode.CDC:
                raise _FieldProblem(
                    f"every stream of a cdc pipeline must use mode cdc (stream {cdc[0].name!r} does); "
                    f"stream {s.name!r} is {s.mode.value} - put it in a pipeline of its own",
                    f"streams[{i}:{s.name}].mode",
                    s.mode.value,
                )
        if self.source.connector != CDC_SOURCE:
            raise _FieldProblem(
                f"mode cdc needs a {CDC_SOURCE} source (logical decoding); this source is "
                f"{self.source.connector!r}",
                "source.connector",
                self.source.connector,
            )
        return self

    @property
    def is_cdc(self) -> bool:
        """Whether the pipeline is change data capture (all its streams are ``mode: cdc``)."""
        return self.streams[0].mode is SyncMode.CDC

    @property
    def cdc_options(self) -> CdcOptions:
        """The ``cdc:`` block, or its defaults."""
        return self.cdc if self.cdc is not None else CdcOptions()

    def stream(self, name: str) -> StreamSpec:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, *, where: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a nested structure."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise PipelineSpecError(
                f"environment variable {name} is not set", field=where or None, source=None
            )

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_env(v, where=f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def parse_pipeline(data: Any, *, source: str = "<pipeline>") -> PipelineSpec:
    """Validate a mapping into a :class:`PipelineSpec`, naming the field path on failure."""
    if not isinstance(data, dict):
        raise PipelineSpecError(f"a pipeline must be a mapping, got {type(data).__name__}", source=source)
    try:
        data = expand_env(data)
    except PipelineSpecError as e:
        raise PipelineSpecError(e.message, field=e.field, value=e.value, source=source) from None
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = _loc(data, err["loc"])
        raw = err.get("input")
        msg = err["msg"]
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, _FieldProblem):
            loc, raw, msg = _join(loc, problem.field), problem.value, str(problem)
        shown = None if _is_secretish(loc) else raw
        if isinstance(shown, dict | list):
            shown = None
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise PipelineSpecError(f"{msg}{more}", field=loc, value=shown, source=source) from None


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate one pipeline YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PipelineSpecError(f"cannot read pipeline file: {e.strerror}", source=str(p)) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PipelineSpecError(f"invalid YAML{pos}: {getattr(e, 'problem', e)}", source=str(p)) from None
    return parse_pipeline(data, source=str(p))


def _loc(data: Any, loc: tuple[Any, ...]) -> str:
    """Render a pydantic location, using stream names instead of list indexes where we can."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if (
                isinstance(node, list)
                and item < len(node)
                and isinstance(node[item], dict)
                and "name" in node[item]
            ):
                label = f"[{item}:{node[item]['name']}]"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _join(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix else field


def _is_secretish(loc: str) -> bool:
    low = loc.lower()
    return any(w in low for w in ("password", "secret", "token", "dsn", "key"))


_FILE_EXT = re.compile(
    r"(\.(csv|tsv|txt|jsonl|ndjson|json|parquet|pq))?(\.(gz|bz2|xz|zst|zip))?$", re.IGNORECASE
)
_GLOB = re.compile(r"[*?\[\]{}]")


def default_table(stream: str) -> str:
    """The destination table for a stream name: `public.orders` -> `orders`,
    `orders/*.csv` -> `orders`, `exports/2024/invoice.csv.gz` -> `invoice`."""
    if "/" in stream or _GLOB.search(stream) or _FILE_EXT.search(stream).group(1):  # type: ignore[union-attr]
        plain = [seg for seg in stream.split("/") if seg and not _GLOB.search(seg)]
        if not plain:
            return "stream"
        last = plain[-1]
        # A trailing glob segment means the files of a folder: the folder names the table.
        return _sanitize(_FILE_EXT.sub("", last) or "stream")
    return _sanitize(stream.rsplit(".", 1)[-1])


def _sanitize(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out.lower()
