"""REST source: JSON APIs described in configuration, read page by page into Arrow batches.

Streams
    One stream per configured resource, named by the resource. A resource with a ``parent`` is
    read once per record of the parent resource (the parent is paged through lazily, never held
    whole); its path's ``{placeholder}``s are filled from the parent record's fields and each
    placeholder is also added to the child's records as a column (overwriting a field of that
    name). A parent record lacking such a field cannot give a URL: it is reported through
    :meth:`RestExtractor.take_rejects` (quarantined with the parent record), not skipped silently.

Records
    ``record_selector`` (see :mod:`~openfuse_connectors.builtin.rest.jsonpath`) picks the records
    from each page. A selector that does not resolve at all fails the read (an error payload
    sent with 200 must not look like "no more records"); ``null`` or ``[]`` is an empty page. A
    record that is not an object becomes ``{"value": ...}``.

Schema
    The resource's explicit ``schema``, else inferred from the first ``infer_pages`` page(s) (see
    :mod:`~openfuse_connectors.builtin.rest.schema`) - so :meth:`~RestExtractor.discover` and
    :meth:`~RestExtractor.stream_info` make requests for resources without a ``schema`` (a child
    resource: a parent page, then child pages). The schema is kept for the extractor's lifetime,
    so every batch of a run is built against the same one. Fields that appear later and are not
    in it are passed through as extra columns (unless the stream selects ``columns``), and values
    that do not fit their column's type are passed as text: the engine's ``conform()`` then
    quarantines or evolves per the pipeline's drift policy. Records missing their primary key
    are passed through with a NULL key, which the engine quarantines.

Incremental loads
    With ``incremental.param``, the stored cursor (or ``start_value`` before the first run) is
    sent as that query parameter. The read also keeps only rows whose cursor is at or after the
    stored one (rows without a cursor are kept), so an API that ignores the parameter or treats
    it coarsely still loads only new rows. The API's filter should be inclusive (``>=``): the
    engine recognises the rows it loaded at exactly the boundary, so none is lost or duplicated.

Batches
    Pages are converted to Arrow as they arrive and yielded in batches of at most ``batch_size``
    rows; memory holds at most one batch plus one page. A page whose columns differ from the
    batch being filled (a new field, records with values passed as text) closes that batch early.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.rest.config import Incremental, OAuth2ClientCredentials, Resource, RestConfig
from openfuse_connectors.builtin.rest.errors import RestResponseError
from openfuse_connectors.builtin.rest.jsonpath import JsonPath
from openfuse_connectors.builtin.rest.paginators import PageRequest, make_turner
from openfuse_connectors.builtin.rest.ratelimit import TokenBucket
from openfuse_connectors.builtin.rest.redact import Redactor
from openfuse_connectors.builtin.rest.schema import infer_schema, to_batches
from openfuse_connectors.catalog import StreamInfo, cursor_candidates
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor, _select
from openfuse_connectors.loader import QuarantinedRow
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import Cursor, StreamState

if TYPE_CHECKING:
    from openfuse_connectors.builtin.rest.client import OAuth2Token, Page, RestClient

__all__ = ["RestExtractor", "format_cursor"]

#: Pages read at most while looking for records to infer a schema from (children of empty parents).
_MAX_SAMPLE_PAGES = 20


class RestExtractor(Extractor):
    """JSON REST APIs configured in the pipeline: auth, pagination, parent/child, incremental."""

    name = "rest"
    config_model = RestConfig
    config: RestConfig

    def __init__(self, config: RestConfig):
        super().__init__(config)
        self.redactor = Redactor.for_config(config)
        self.limiter = TokenBucket(config.rate_limit, config.rate_limit_burst) if config.rate_limit else None
        self._oauth: OAuth2Token | None = None
        self._infos: dict[str, StreamInfo] = {}
        self._selectors: dict[str, JsonPath | None] = {}
        self._rejects: list[QuarantinedRow] = []
        self._page_starts: list[tuple[int, str]] = []
        self._position = 0

    # -- client

    @property
    def oauth(self) -> OAuth2Token | None:
        if self._oauth is None and isinstance(self.config.auth, OAuth2ClientCredentials):
            from openfuse_connectors.builtin.rest.client import OAuth2Token

            self._oauth = OAuth2Token(self.config.auth)
        return self._oauth

    def client(self) -> RestClient:
        """A client for one operation; the rate limiter and OAuth2 token are the extractor's."""
        from openfuse_connectors.builtin.rest.client import RestClient

        return RestClient(self.config, redactor=self.redactor, limiter=self.limiter, oauth=self.oauth)

    # -- catalog

    def check(self) -> None:
        """Read the first page of the first resource without a parent."""
        root = next(r for r in self.config.resources if r.parent is None)
        first = make_turner(root.paginator).first(PageRequest(self._url(root, {}), self._params(root)))
        with self.client() as c:
            self._records(root, c.get_json(first.url, first.params), {})

    def discover(self) -> list[StreamInfo]:
        """Every resource with its schema; resources without an explicit ``schema`` are sampled
        (requests are made, see the module docstring)."""
        return [self._info(r) for r in self.config.resources]

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        return _select(self._info(self._resource(stream.name)), stream)

    def _resource(self, name: str) -> Resource:
        r = self.config.resource(name)
        if r is None:
            raise ConfigError(
                f"stream {name!r} is not a resource of this REST source; resources: "
                f"{[x.name for x in self.config.resources]}",
                field=f"streams[{name}].name",
                value=name,
            )
        return r

    def _info(self, r: Resource) -> StreamInfo:
        if r.name in self._infos:
            return self._infos[r.name]
        required = [*(r.parent.fields if r.parent else ()), *r.primary_key]
        if r.cursor_field:
            required.append(r.cursor_field)
        explicit = r.arrow_types()
        if explicit is not None:
            schema = infer_schema([], explicit=explicit, required=required)
        else:
            schema = infer_schema(self._sample(r), required=required)
        cursors = tuple(
            dict.fromkeys([*([r.cursor_field] if r.cursor_field else []), *cursor_candidates(schema)])
        )
        info = StreamInfo(
            r.name,
            schema,
            r.primary_key,
            cursors,
            {"path": r.path, "parent": r.parent.resource if r.parent else None, "inferred": explicit is None},
        )
        self._infos[r.name] = info
        return info

    def _sample(self, r: Resource) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        with self.client() as c:
            pages = self._pages(c, r, self._params(r), rejects=None)
            try:
                with_records = 0
                for n, (_, page_records) in enumerate(pages, start=1):
                    records.extend(page_records)
                    with_records += bool(page_records)
                    if with_records >= r.infer_pages or n >= _MAX_SAMPLE_PAGES:
                        break
            finally:
                pages.close()
        return records

    # -- reading

    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        r = self._resource(stream.name)
        schema = self.stream_info(stream).schema
        keep_extra = stream.columns is None
        params = {**self._params(r), **self._incremental_params(r, state)}
        since = _since_scalar(stream, state)
        self._rejects, self._page_starts, self._position = [], [], 0
        pending: list[pa.RecordBatch] = []
        rows = 0
        with self.client() as c:
            pages = self._pages(c, r, params, rejects=self._rejects)
            try:
                for url, records in pages:
                    for batch in to_batches(records, schema, keep_extra=keep_extra):
                        if since is not None and stream.cursor_field:
                            batch = _at_or_after(batch, stream.cursor_field, since)
                        if not batch.num_rows:
                            continue
                        if pending and not pending[0].schema.equals(batch.schema):
                            yield from self._emit(pending, batch_size, final=True)
                            pending, rows = [], 0
                        self._page_starts.append((self._position + rows, url))
                        pending.append(batch)
                        rows += batch.num_rows
                        if rows >= batch_size:
                            pending = yield from self._emit(pending, batch_size, final=False)
                            rows = sum(b.num_rows for b in pending)
                if pending:
                    yield from self._emit(pending, batch_size, final=True)
            finally:
                pages.close()

    def _emit(
        self, pending: list[pa.RecordBatch], batch_size: int, *, final: bool
    ) -> Generator[pa.RecordBatch, None, list[pa.RecordBatch]]:
        """Yield full batches of ``pending`` (and the rest when ``final``); return what is left."""
        table = pa.Table.from_batches(pending)
        n = table.num_rows if final else table.num_rows - table.num_rows % batch_size
        for start in range(0, n, batch_size):
            part = table.slice(start, min(batch_size, n - start)).combine_chunks()
            out = part.to_batches()[0]
            yield out
            self._position += out.num_rows
            self._prune_page_starts()
        rest = table.slice(n)
        return rest.to_batches() if rest.num_rows else []

    def _pages(
        self,
        c: RestClient,
        r: Resource,
        params: dict[str, Any],
        *,
        rejects: list[QuarantinedRow] | None,
    ) -> Generator[tuple[str, list[dict[str, Any]]], None, None]:
        """(redacted URL, records) for every page of ``r``, for every parent record."""
        for ctx in self._parent_values(c, r, rejects):
            turner = make_turner(r.paginator)
            request: PageRequest | None = turner.first(PageRequest(self._url(r, ctx), params))
            while request is not None:
                page = c.get_json(request.url, request.params)
                records = self._records(r, page, ctx)
                yield page.url, records
                following = turner.next(request, page, len(records))
                if following == request:
                    raise RestResponseError(
                        url=page.url, reason="the paginator did not advance (same request twice)"
                    )
                request = following

    def _parent_values(
        self, c: RestClient, r: Resource, rejects: list[QuarantinedRow] | None
    ) -> Iterator[dict[str, Any]]:
        if r.parent is None:
            yield {}
            return
        parent = self._resource(r.parent.resource)
        fields = r.parent.fields
        for url, records in self._pages(c, parent, self._params(parent), rejects=rejects):
            for rec in records:
                missing = [f for f in fields.values() if rec.get(f) is None]
                if missing:
                    if rejects is not None:
                        rejects.append(
                            QuarantinedRow(
                                position=self._position,
                                field=missing[0],
                                value=None,
                                reason=f"parent record of resource {parent.name!r} has no {missing} for "
                                f"{r.name!r} path {r.path!r}; its child records were not read (url={url})",
                                record={**rec, "_url": url},
                            )
                        )
                    continue
                yield {ph: rec[f] for ph, f in fields.items()}

    def _records(self, r: Resource, page: Page, ctx: dict[str, Any]) -> list[dict[str, Any]]:
        body = page.body
        if body is None:
            return []
        if r.name not in self._selectors:
            self._selectors[r.name] = JsonPath(r.record_selector) if r.record_selector else None
        path = self._selectors[r.name]
        if path is None:
            matches, wildcard = [body], False
        else:
            base, wildcard = path.without_last_wildcard()
            matches = base.find(body)
            if not matches and not base.has_wildcard:
                raise RestResponseError(
                    url=page.url,
                    reason=f"record_selector {path.text!r} matches nothing in the response; check it "
                    "against the API's answer",
                    body=self.redactor.text(_start(body)),
                )
        out: list[dict[str, Any]] = []
        for m in matches:
            if isinstance(m, list):
                out.extend(_as_record(x) for x in m)
            elif isinstance(m, dict):
                if wildcard:
                    out.extend(_as_record(x) for x in m.values())
                else:
                    out.append(m)
            elif m is not None:
                out.append({"value": m})
        if ctx:
            for rec in out:
                rec.update(ctx)
        return out

    def _url(self, r: Resource, ctx: dict[str, Any]) -> str:
        path = r.path.format_map({k: quote(str(v), safe="") for k, v in ctx.items()}) if ctx else r.path
        if path.lower().startswith(("http://", "https://")):
            return path
        base = self.config.base_url.rstrip("/")
        return f"{base}/{path.lstrip('/')}" if path else base

    def _params(self, r: Resource) -> dict[str, Any]:
        params: dict[str, Any] = dict(r.params)
        if r.incremental is not None and r.incremental.start_value is not None:
            params[r.incremental.param] = r.incremental.start_value
        return params

    def _incremental_params(self, r: Resource, state: StreamState | None) -> dict[str, Any]:
        inc = r.incremental
        cursor = state.cursor if state is not None else None
        if inc is None or cursor is None or cursor.field != r.cursor_field:
            return {}
        return {inc.param: format_cursor(cursor, inc)}

    # -- quarantine hooks

    def take_rejects(self) -> list[QuarantinedRow]:
        """Parent records whose children could not be requested (see the module docstring)."""
        out = list(self._rejects)
        self._rejects.clear()  # in place: the running read appends to this list
        return out

    def annotate_quarantine(self, rows: list[QuarantinedRow]) -> list[QuarantinedRow]:
        """Add the (redacted) URL of the page each quarantined row came from, as ``_url``."""
        out = []
        for row in rows:
            url = self._url_at(row.position)
            if url is None:
                out.append(row)
                continue
            out.append(
                dataclasses.replace(
                    row, reason=f"{row.reason} (url={url})", record={**row.record, "_url": url}
                )
            )
        return out

    def _url_at(self, position: int) -> str | None:
        found = None
        for start, url in self._page_starts:
            if start > position:
                break
            found = url
        return found

    def _prune_page_starts(self) -> None:
        # Keep the page holding the next row to yield and those after it: memory stays bounded.
        starts = self._page_starts
        keep = 0
        for i, (start, _) in enumerate(starts):
            if start <= self._position:
                keep = i
        if keep:
            del starts[:keep]


def format_cursor(cursor: Cursor, inc: Incremental) -> str:
    """The stored cursor as the API expects it (``incremental.format``)."""
    if inc.format == "raw":
        return cursor.value
    scalar = cursor.to_scalar()
    t = scalar.type
    if pa.types.is_timestamp(t):
        value = pc.cast(scalar, pa.timestamp("us", tz=t.tz), safe=False).as_py()
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        if inc.format == "unix":
            return str(math.floor(aware.timestamp()))
        if value.tzinfo is None:
            return str(value.isoformat())
        return str(aware.astimezone(dt.UTC).isoformat()).replace("+00:00", "Z")
    if pa.types.is_date(t):
        day = scalar.as_py()
        if inc.format == "unix":
            return str(int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()))
        return str(day.isoformat())
    return cursor.value


def _since_scalar(stream: StreamSpec, state: StreamState | None) -> pa.Scalar | None:
    cursor = state.cursor if state is not None else None
    if cursor is None or not stream.cursor_field or cursor.field != stream.cursor_field:
        return None
    return cursor.to_scalar()


def _at_or_after(batch: pa.RecordBatch, field: str, since: pa.Scalar) -> pa.RecordBatch:
    """Rows whose ``field`` is >= ``since`` or NULL; unchanged if the column cannot be compared
    (e.g. it came as text because a value did not parse: the engine quarantines that one)."""
    idx = batch.schema.get_field_index(field)
    if idx < 0:
        return batch
    col = batch.column(idx)
    if pa.types.is_string(col.type) != pa.types.is_string(since.type):
        return batch
    try:
        bound = since if since.type == col.type else since.cast(col.type)
        keep = pc.fill_null(pc.greater_equal(col, bound), True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return batch
    if pc.all(keep).as_py():
        return batch
    return batch.filter(keep)


def _as_record(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def _start(body: Any) -> str:
    with contextlib.suppress(TypeError, ValueError):
        import json

        return json.dumps(body, default=str)[:200]
    return repr(body)[:200]
