"""The Dagster webserver's GraphQL API, as the API needs it: launch, list, read, tail and cancel
runs, and reload the code location that holds the pipelines.

The API never imports Dagster: it speaks plain HTTP to ``OPENFUSE_DAGSTER_GRAPHQL_URL``, so the two
deploy and scale apart. :class:`DagsterClient` is synchronous (the services run in worker threads,
REST and GraphQL alike) and shares one pooled ``httpx.Client`` between threads.

Failures become problems the API answers with: Dagster not answering is ``503
dagster-unavailable``; Dagster answering with an error is ``502 dagster-error`` (its message,
first line only, with URL passwords masked). Results are small frozen dataclasses: what the API
reads, already decoded (timestamps in seconds, metadata as plain values).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.connection_config import redact
from api.errors import ApiError, Problem

__all__ = [
    "DagsterClient",
    "DagsterError",
    "DagsterMaterialization",
    "DagsterRun",
    "DagsterStep",
    "DagsterUnavailable",
    "EventPage",
    "JobNotFound",
    "LocationEntry",
]

log = logging.getLogger(__name__)

_META = """
fragment Meta on MetadataEntry {
  label
  __typename
  ... on IntMetadataEntry { intRepr }
  ... on FloatMetadataEntry { floatValue floatRepr }
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on BoolMetadataEntry { boolValue }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
  ... on MarkdownMetadataEntry { mdStr }
  ... on TimestampMetadataEntry { timestamp }
}
"""
_RUN = """
fragment RunFields on Run {
  runId jobName status creationTime startTime endTime stepKeysToExecute
  tags { key value }
}
"""
_STEPS = """
fragment StepFields on Run {
  stepStats {
    stepKey status startTime endTime
    attempts { startTime }
    materializations { assetKey { path } partition metadataEntries { ...Meta } }
  }
}
"""
_LOCATION = """
fragment Location on WorkspaceLocationEntry {
  name loadStatus updatedTimestamp
  locationOrLoadError { __typename ... on PythonError { message } }
}
"""


class DagsterUnavailable(Problem):
    """The Dagster webserver did not answer (down, unreachable, timed out)."""

    def __init__(self, url: str, reason: str):
        self.url = url
        super().__init__(
            503,
            "dagster-unavailable",
            f"the Dagster webserver at {redact(url, [])} did not answer ({reason}); try again later",
            title="Dagster unavailable",
        )


class DagsterError(Problem):
    """Dagster answered with an error."""

    def __init__(self, what: str, message: str):
        self.what = what
        first = redact(message.strip().splitlines()[0] if message.strip() else "no message", [])
        super().__init__(
            502, "dagster-error", f"Dagster refused to {what}: {first[:500]}", title="Dagster error"
        )


class JobNotFound(ApiError):
    """The code location has no job of that name (not exported, not reloaded, or broken)."""

    def __init__(self, job: str):
        self.job = job
        super().__init__(f"Dagster has no job {job!r} in its code location")


@dataclass(frozen=True)
class LocationEntry:
    name: str
    loaded: bool
    updated: float
    error: str | None = None


@dataclass(frozen=True)
class DagsterMaterialization:
    asset_key: tuple[str, ...]
    partition: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class DagsterStep:
    key: str
    status: str | None  # SUCCESS, FAILURE, SKIPPED, IN_PROGRESS (None: not reported)
    start: float | None
    end: float | None
    attempts: int
    materializations: tuple[DagsterMaterialization, ...] = ()


@dataclass(frozen=True)
class DagsterRun:
    run_id: str
    job_name: str
    status: str  # Dagster's RunStatus: QUEUED, STARTED, SUCCESS ...
    tags: Mapping[str, str]
    created: float
    started: float | None
    ended: float | None
    step_keys: tuple[str, ...] | None  # None: the whole job
    steps: tuple[DagsterStep, ...] | None = None  # None: not asked for


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: str = ""
    has_more: bool = False


def _metadata_value(entry: Mapping[str, Any]) -> Any:
    kind = entry.get("__typename")
    if kind == "IntMetadataEntry":
        return int(entry["intRepr"])
    if kind == "FloatMetadataEntry":
        v = entry.get("floatValue")
        return v if v is not None else entry.get("floatRepr")
    if kind == "JsonMetadataEntry":
        try:
            return json.loads(entry["jsonString"])
        except ValueError:
            return entry["jsonString"]
    for key in ("text", "boolValue", "path", "url", "mdStr", "timestamp"):
        if key in entry:
            return entry[key]
    return None  # NullMetadataEntry, and kinds the API does not show (table schemas, ...)


_SHOWN_META = frozenset(
    {
        "IntMetadataEntry",
        "FloatMetadataEntry",
        "TextMetadataEntry",
        "JsonMetadataEntry",
        "BoolMetadataEntry",
        "PathMetadataEntry",
        "UrlMetadataEntry",
        "MarkdownMetadataEntry",
        "TimestampMetadataEntry",
        "NullMetadataEntry",
    }
)


def _run(d: Mapping[str, Any]) -> DagsterRun:
    steps = None
    if "stepStats" in d:
        steps = tuple(
            DagsterStep(
                key=s["stepKey"],
                status=s.get("status"),
                start=s.get("startTime"),
                end=s.get("endTime"),
                attempts=len(s.get("attempts") or ()),
                materializations=tuple(
                    DagsterMaterialization(
                        asset_key=tuple((m.get("assetKey") or {}).get("path") or ()),
                        partition=m.get("partition"),
                        metadata={
                            e["label"]: _metadata_value(e)
                            for e in m.get("metadataEntries") or ()
                            if e.get("__typename") in _SHOWN_META
                        },
                    )
                    for m in s.get("materializations") or ()
                ),
            )
            for s in d["stepStats"]
        )
    keys = d.get("stepKeysToExecute")
    return DagsterRun(
        run_id=d["runId"],
        job_name=d["jobName"],
        status=d["status"],
        tags={t["key"]: t["value"] for t in d.get("tags") or ()},
        created=float(d["creationTime"]),
        started=d.get("startTime"),
        ended=d.get("endTime"),
        step_keys=tuple(keys) if keys is not None else None,
        steps=steps,
    )


def _location(d: Mapping[str, Any]) -> LocationEntry:
    loc = d.get("locationOrLoadError") or {}
    error = loc.get("message") if loc.get("__typename") == "PythonError" else None
    return LocationEntry(
        name=d["name"],
        loaded=d.get("loadStatus") == "LOADED",
        updated=float(d.get("updatedTimestamp") or 0.0),
        error=error,
    )


class DagsterClient:
    """A client of one Dagster webserver's GraphQL endpoint and one code location in it.

    Args:
        url: ``http://host:3000/graphql``.
        location: the code location holding the pipelines' jobs.
        repository: the repository in it (``__repository__`` for ``Definitions``).
        timeout: seconds per call; reloads get ten times as long.
        transport: an httpx transport (tests may route to an in-process app).
    """

    def __init__(
        self,
        url: str,
        *,
        location: str,
        repository: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url
        self.location_name = location
        self.repository = repository
        self.timeout = timeout
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            transport=transport,
            headers={"User-Agent": "openfuse-api"},
        )

    def close(self) -> None:
        self._http.close()

    # -- plumbing

    def execute(
        self, query: str, variables: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST one GraphQL document; the ``data`` member, or a problem."""
        try:
            r = self._http.post(
                self.url,
                json={"query": query, "variables": dict(variables or {})},
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as e:
            raise DagsterUnavailable(self.url, type(e).__name__) from None
        if r.status_code >= 500:
            raise DagsterUnavailable(self.url, f"HTTP {r.status_code}")
        try:
            doc = r.json()
        except ValueError:
            raise DagsterError("answer", f"HTTP {r.status_code}, not JSON") from None
        if doc.get("errors"):
            raise DagsterError("answer the query", str(doc["errors"][0].get("message", "")))
        data = doc.get("data")
        if not isinstance(data, dict):
            raise DagsterError("answer", f"HTTP {r.status_code} without data")
        return data

    @staticmethod
    def _unwrap(result: Mapping[str, Any], what: str, ok: str) -> Mapping[str, Any]:
        kind = result.get("__typename")
        if kind != ok:
            raise DagsterError(what, str(result.get("message") or kind))
        return result

    # -- the webserver and the code location

    def version(self, *, timeout: float | None = None) -> str:
        return str(self.execute("{ version }", timeout=timeout)["version"])

    def location(self) -> LocationEntry | None:
        data = self.execute(
            "query L($name: String!) { workspaceLocationEntryOrError(name: $name) { "
            "__typename ... Location ... on PythonError { message } } }" + _LOCATION,
            {"name": self.location_name},
        )
        entry = data.get("workspaceLocationEntryOrError")
        if entry is None:
            return None
        return _location(self._unwrap(entry, "describe the code location", "WorkspaceLocationEntry"))

    def reload(self) -> LocationEntry:
        """Reload the code location (Dagster re-reads the pipeline files); waits until loaded."""
        data = self.execute(
            "mutation R($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) { "
            "__typename ... Location ... on Error { message } } }" + _LOCATION,
            {"name": self.location_name},
            timeout=self.timeout * 10,
        )
        entry = _location(
            self._unwrap(
                data["reloadRepositoryLocation"], "reload the code location", "WorkspaceLocationEntry"
            )
        )
        if entry.error:
            raise DagsterError("load the code location", entry.error)
        return entry

    def broken_pipelines(self) -> list[str]:
        """The lines of the code location's ``openfuse_broken_pipelines`` sensor (one per pipeline
        that did not load: ``<file> (field <f>): <error>``); empty when none is broken."""
        data = self.execute(
            "query B($sel: RepositorySelector!) { repositoryOrError(repositorySelector: $sel) { "
            "__typename ... on Repository { sensors { name description } } } }",
            {"sel": {"repositoryLocationName": self.location_name, "repositoryName": self.repository}},
        )
        repo = data["repositoryOrError"]
        if repo.get("__typename") != "Repository":
            return []
        for s in repo.get("sensors") or ():
            if s["name"] == "openfuse_broken_pipelines" and s.get("description"):
                return [ln[2:] for ln in str(s["description"]).splitlines() if ln.startswith("- ")]
        return []

    # -- runs

    def launch(
        self,
        job: str,
        *,
        tags: Mapping[str, str],
        run_config: Mapping[str, Any] | None = None,
        op_selection: Sequence[str] | None = None,
    ) -> DagsterRun:
        """Launch ``job`` (only ``op_selection`` of it, when given); raises :class:`JobNotFound`."""
        selector: dict[str, Any] = {
            "repositoryLocationName": self.location_name,
            "repositoryName": self.repository,
            "jobName": job,
        }
        if op_selection:
            selector["solidSelection"] = list(op_selection)
        data = self.execute(
            "mutation L($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { ...RunFields } } "
            "... on Error { message } "
            "... on RunConfigValidationInvalid { errors { message } } "
            "... on InvalidStepError { invalidStepKey } } }" + _RUN,
            {
                "p": {
                    "selector": selector,
                    "runConfigData": dict(run_config or {}),
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
                }
            },
        )
        result = data["launchRun"]
        kind = result.get("__typename")
        if kind == "LaunchRunSuccess":
            return _run(result["run"])
        if kind == "PipelineNotFoundError":
            raise JobNotFound(job)
        if kind == "RunConfigValidationInvalid":
            raise DagsterError(f"launch {job!r}", "; ".join(e["message"] for e in result.get("errors") or ()))
        if kind == "InvalidStepError":
            raise DagsterError(f"launch {job!r}", f"no step {result.get('invalidStepKey')!r}")
        raise DagsterError(f"launch {job!r}", str(result.get("message") or kind))

    def run(self, run_id: str, *, steps: bool = True) -> DagsterRun | None:
        """One run (with its step results unless ``steps`` is false), or None if Dagster has none."""
        query = (
            "query R($id: ID!) { runOrError(runId: $id) { __typename ... on Run { ...RunFields "
            + ("...StepFields " if steps else "")
            + "} ... on PythonError { message } } }"
            + _RUN
            + (_STEPS + _META if steps else "")
        )
        result = self.execute(query, {"id": run_id})["runOrError"]
        if result.get("__typename") == "RunNotFoundError":
            return None
        return _run(self._unwrap(result, f"read run {run_id}", "Run"))

    def runs(
        self,
        *,
        job: str | None = None,
        tags: Mapping[str, str] | None = None,
        statuses: Sequence[str] | None = None,
        created_before: float | None = None,
        limit: int = 50,
    ) -> list[DagsterRun]:
        """Runs matching every filter given, newest first."""
        flt: dict[str, Any] = {}
        if job is not None:
            flt["pipelineName"] = job
        if tags:
            flt["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if statuses:
            flt["statuses"] = list(statuses)
        if created_before is not None:
            flt["createdBefore"] = created_before
        data = self.execute(
            "query Q($f: RunsFilter, $n: Int) { runsOrError(filter: $f, limit: $n) { __typename "
            "... on Runs { results { ...RunFields } } ... on Error { message } "
            "... on InvalidPipelineRunsFilterError { message } } }" + _RUN,
            {"f": flt, "n": limit},
        )
        result = self._unwrap(data["runsOrError"], "list runs", "Runs")
        return [_run(r) for r in result["results"]]

    def events(self, run_id: str, *, cursor: str | None = None, limit: int = 100) -> EventPage | None:
        """Up to ``limit`` events of a run after ``cursor``, oldest first; None if no such run."""
        data = self.execute(
            "query E($id: ID!, $c: String, $n: Int) { logsForRun(runId: $id, afterCursor: $c, limit: $n) { "
            "__typename ... on EventConnection { cursor hasMore events { __typename "
            "... on MessageEvent { message timestamp level stepKey eventType } } } "
            "... on PythonError { message } } }",
            {"id": run_id, "c": cursor, "n": limit},
        )
        result = data["logsForRun"]
        if result.get("__typename") == "RunNotFoundError":
            return None
        result = self._unwrap(result, f"read the events of run {run_id}", "EventConnection")
        return EventPage(list(result["events"]), str(result["cursor"]), bool(result["hasMore"]))

    def terminate(self, run_id: str) -> tuple[DagsterRun, str | None] | None:
        """Ask Dagster to cancel a run (safe terminate): the run, and Dagster's reason when it
        could not; None if no such run."""
        data = self.execute(
            "mutation T($id: String!) { terminateRun(runId: $id, terminatePolicy: SAFE_TERMINATE) { "
            "__typename ... on TerminateRunSuccess { run { ...RunFields } } "
            "... on TerminateRunFailure { message run { ...RunFields } } ... on Error { message } } }" + _RUN,
            {"id": run_id},
        )
        result = data["terminateRun"]
        kind = result.get("__typename")
        if kind == "RunNotFoundError":
            return None
        if kind == "TerminateRunSuccess":
            return _run(result["run"]), None
        if kind == "TerminateRunFailure":
            return _run(result["run"]), str(result.get("message") or "no reason given")
        raise DagsterError(f"cancel run {run_id}", str(result.get("message") or kind))
