"""Asset checks on synced tables.

* ``row_count_parity`` (ERROR) - on full-refresh-overwrite streams whose destination can count
  rows (its loader implements ``Loader.count_rows``): the table holds exactly the rows the
  source gave in that load, less the quarantined ones. The source count is the run's
  ``rows_read`` (extractors have no count method, and a separate ``count(*)`` on the source
  would race new writes anyway).
* ``no_quarantined_rows`` (WARN) - the last sync diverted no rows to the quarantine table.

Both are evaluated in the sync step right after the stream commits. Selected on their own (the
"Execute checks" button, or a job selecting only checks) they re-evaluate against the latest
materialization's metadata and, for the row count, the destination table as it is now - which
catches rows deleted or added behind OpenFuse's back since the last full refresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
)

from openfuse_connectors.engine import StreamResult
from openfuse_connectors.loader import QUARANTINE_TABLE, Loader
from openfuse_connectors.registry import Registry, get_registry
from openfuse_connectors.spec import PipelineSpec, StreamSpec, SyncMode
from openfuse_dagster.translator import OpenFuseTranslator

__all__ = [
    "QUARANTINE_CHECK",
    "ROW_COUNT_CHECK",
    "CheckOutcome",
    "build_openfuse_check_specs",
    "can_count_rows",
    "outcomes_after_sync",
    "outcomes_from_metadata",
    "quarantine_outcome",
    "row_count_outcome",
]

ROW_COUNT_CHECK = "row_count_parity"
QUARANTINE_CHECK = "no_quarantined_rows"


def can_count_rows(connector: str, registry: Registry | None = None) -> bool:
    """Whether the destination connector's loader implements ``count_rows``."""
    loader = (registry or get_registry()).get(connector).loader
    return loader is not None and loader.count_rows is not Loader.count_rows


def _has_row_count_check(stream: StreamSpec, counts: bool) -> bool:
    return counts and stream.mode is SyncMode.FULL_REFRESH_OVERWRITE


def build_openfuse_check_specs(
    pipeline: PipelineSpec,
    translator: OpenFuseTranslator | None = None,
    registry: Registry | None = None,
) -> list[AssetCheckSpec]:
    """The check specs of every stream's asset (see the module docstring)."""
    t = translator or OpenFuseTranslator()
    counts = can_count_rows(pipeline.destination.connector, registry)
    specs = []
    for s in pipeline.streams:
        key = t.get_asset_key(pipeline, s)
        if _has_row_count_check(s, counts):
            specs.append(
                AssetCheckSpec(
                    ROW_COUNT_CHECK,
                    asset=key,
                    description="After a full refresh the table holds every row read from the source, "
                    "less the quarantined ones.",
                )
            )
        specs.append(
            AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                description=f"The last sync diverted no rows to `{QUARANTINE_TABLE}` (warning).",
            )
        )
    return specs


@dataclass(frozen=True)
class CheckOutcome:
    """One evaluated check, convertible to what an asset step or an op reports."""

    check_name: str
    passed: bool
    description: str
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def result(self, key: AssetKey) -> AssetCheckResult:
        return AssetCheckResult(
            asset_key=key,
            check_name=self.check_name,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata=dict(self.metadata),
        )

    def evaluation(self, key: AssetKey) -> AssetCheckEvaluation:
        return AssetCheckEvaluation(
            asset_key=key,
            check_name=self.check_name,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata=dict(self.metadata),
        )


def row_count_outcome(
    source_rows: int, quarantined: int, destination_rows: int | BaseException
) -> CheckOutcome:
    if isinstance(destination_rows, BaseException):
        return CheckOutcome(
            ROW_COUNT_CHECK,
            False,
            f"could not count the destination rows: {type(destination_rows).__name__}: {destination_rows}",
            metadata={"source_rows": MetadataValue.int(source_rows)},
        )
    expected = source_rows - quarantined
    passed = destination_rows == expected
    diff = destination_rows - expected
    return CheckOutcome(
        ROW_COUNT_CHECK,
        passed,
        (
            f"destination holds {destination_rows:,} rows = {source_rows:,} read - {quarantined:,} quarantined"
            if passed
            else f"destination holds {destination_rows:,} rows but the last full refresh read {source_rows:,} "
            f"and quarantined {quarantined:,} (difference {diff:+,})"
        ),
        metadata={
            "source_rows": MetadataValue.int(source_rows),
            "quarantined_rows": MetadataValue.int(quarantined),
            "destination_rows": MetadataValue.int(destination_rows),
            "difference": MetadataValue.int(diff),
        },
    )


def quarantine_outcome(quarantined: int) -> CheckOutcome:
    return CheckOutcome(
        QUARANTINE_CHECK,
        quarantined == 0,
        "no rows quarantined"
        if quarantined == 0
        else f"{quarantined:,} row(s) quarantined; see table {QUARANTINE_TABLE} in the destination",
        severity=AssetCheckSeverity.WARN,
        metadata={
            "rows_quarantined": MetadataValue.int(quarantined),
            "quarantine_table": MetadataValue.text(QUARANTINE_TABLE),
        },
    )


def _count(loader: Loader, table: str) -> int | BaseException:
    try:
        return loader.count_rows(table)
    except Exception as e:  # reported as a failed check, not a failed sync
        return e


def outcomes_after_sync(
    result: StreamResult, loader: Loader, checks: set[str]
) -> tuple[list[CheckOutcome], int | None]:
    """The selected checks of a stream just synced, plus the destination row count if taken."""
    outcomes: list[CheckOutcome] = []
    counted: int | None = None
    if ROW_COUNT_CHECK in checks:
        n = _count(loader, result.table)
        counted = n if isinstance(n, int) else None
        outcomes.append(row_count_outcome(result.rows_read, result.rows_quarantined, n))
    if QUARANTINE_CHECK in checks:
        outcomes.append(quarantine_outcome(result.rows_quarantined))
    return outcomes, counted


def outcomes_from_metadata(
    metadata: Mapping[str, Any] | None, table: str, loader: Loader | None, checks: set[str]
) -> list[CheckOutcome]:
    """The selected checks re-evaluated against the latest materialization's metadata."""

    def value(key: str) -> Any:
        v = (metadata or {}).get(key)
        return getattr(v, "value", v)

    outcomes = []
    for name in sorted(checks):
        if metadata is None:
            outcomes.append(CheckOutcome(name, False, "the asset has not been materialized yet"))
        elif name == ROW_COUNT_CHECK:
            if value("disposition") != "overwrite":
                outcomes.append(
                    CheckOutcome(name, True, "the last sync was not a full refresh; counts need not match")
                )
            else:
                outcomes.append(
                    row_count_outcome(
                        int(value("rows_read") or 0),
                        int(value("rows_quarantined") or 0),
                        _count(loader, table)
                        if loader is not None
                        else ValueError("no destination connection"),
                    )
                )
        elif name == QUARANTINE_CHECK:
            outcomes.append(quarantine_outcome(int(value("rows_quarantined") or 0)))
    return outcomes
