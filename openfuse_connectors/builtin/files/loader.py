"""Files destination: each stream becomes a directory of Parquet, CSV or JSON Lines part files.

Layout under the configured ``path``::

    <table>/part-<run_id>-<n>.<ext>          committed data (a new part every max_rows_per_file rows)
    <table>/_schema.arrow                    the table's exact Arrow schema (IPC), so CSV and JSON
                                             Lines tables read back with their types
    <table>/_staging-<run_id>/               parts of a load in progress
    <table>/_commit-<run_id>.json            commit journal, present only while committing
    _openfuse_state/<pipeline>/<key>.json    stream state (the key is percent-encoded)
    _openfuse_quarantine/<table>/<run_id>.jsonl   quarantined rows, one JSON object per line

Transaction
    Batches are written (streamed: one batch in memory) to parts in the staging directory. At
    :meth:`~openfuse_connectors.loader.LoadTransaction.commit` the load writes a journal naming
    every rename, every old part to delete, the schema and the new state, then applies it: parts
    are renamed into place one by one, replaced parts deleted, and the state file replaced
    atomically (temp file + rename). Writing the journal is the commit point. A crash before it
    leaves the table untouched (the staging directory is removed by the next load); a crash after
    it is completed by the next loader that reads the stream's state or opens the table, so data
    and state never disagree. Before the journal is applied completely a reader of the directory
    may see the new parts next to the old ones. One writer per table at a time.

Dispositions
    * overwrite - the new parts are put in place, then every older part is deleted;
    * append - the new parts are added. When the schema evolves, existing parts are rewritten to
      the new schema (part by part) in the same commit, so all parts of a table share one schema;
    * merge - rewrites the table: existing rows and the new ones are combined, and per primary
      key the row with the greatest cursor wins (the newest row on a tie; a NULL cursor loses to
      any value). This holds the whole table in memory: fine for files, use a database for large
      deduplicated tables.

Formats
    ``parquet`` (default) holds every Arrow type. ``csv`` cannot hold nested or binary columns and
    ``jsonl`` cannot hold binary ones; such a schema fails at ``prepare`` naming the column. Both
    keep dates and timestamps as ISO 8601 text, which has no year outside 1..9999: such a value
    (a DuckDB ``infinity``) is quarantined by the engine through :meth:`FilesLoader.unfit_values`.
    Decimals (decimal256 too) and ``arrow.json`` are written as their exact text and read back
    with their types from ``_schema.arrow``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import posixpath
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.files.config import FileFormat, FilesConfig
from openfuse_connectors.builtin.files.fs import Storage
from openfuse_connectors.builtin.files.readers import csv_columns, fit, read_json_bytes
from openfuse_connectors.conform import outside_iso_years
from openfuse_connectors.errors import ConfigError, FatalError, StateError
from openfuse_connectors.loader import (
    QUARANTINE_TABLE,
    STATE_TABLE,
    Disposition,
    Loader,
    LoadTransaction,
    QuarantinedRow,
    WriteJob,
)
from openfuse_connectors.state import StreamState

__all__ = ["FilesLoader", "TableCorruptError"]

PART_PREFIX = "part-"
SCHEMA_FILE = "_schema.arrow"
_EXTENSIONS: dict[str, str] = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}
_FORMAT_OF_EXT: dict[str, FileFormat] = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


class TableCorruptError(FatalError):
    """A committed part does not match the table's recorded schema."""

    def __init__(self, table: str, part: str, detail: str):
        self.table = table
        self.part = part
        super().__init__(f"{table=}: part {part=} does not match the table schema: {detail}")


class FilesLoader(Loader):
    """Directories of Parquet, CSV or JSON Lines part files; data and state commit together."""

    name = "files"
    config_model = FilesConfig
    config: FilesConfig

    def __init__(self, config: FilesConfig):
        super().__init__(config)
        self._storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = Storage(self.config.path)
        return self._storage

    @property
    def format(self) -> FileFormat:
        return self.config.format or "parquet"

    def unfit_values(self, column: pa.Array, field: pa.Field) -> dict[int, tuple[str, str]]:
        """Values the engine quarantines: in CSV and JSON Lines, dates and timestamps beyond ISO 8601
        text (years 1..9999, e.g. a DuckDB ``infinity``); Parquet holds every Arrow value."""
        return {} if self.format == "parquet" else outside_iso_years(column, field)

    def check(self) -> None:
        st = self.storage
        try:
            st.makedirs(st.root)
        except OSError as e:
            raise ConfigError(
                f"files destination: cannot create the directory: {e}",
                field="destination.config.path",
                value=self.config.path,
            ) from e
        if not st.isdir(st.root):
            raise ConfigError(
                "files destination: path exists and is not a directory",
                field="destination.config.path",
                value=self.config.path,
            )

    # -- paths

    def table_dir(self, table: str) -> str:
        return self.storage.join(table)

    def state_path(self, pipeline: str, key: str) -> str:
        return self.storage.join(STATE_TABLE, pipeline, quote(key, safe="") + ".json")

    def quarantine_path(self, table: str, run_id: str) -> str:
        return self.storage.join(QUARANTINE_TABLE, table, f"{run_id}.jsonl")

    def parts(self, table: str) -> list[str]:
        """Committed part files of a table, oldest first."""
        st = self.storage
        found = [
            e
            for e in st.entries(self.table_dir(table))
            if e["type"] == "file" and posixpath.basename(str(e["name"])).startswith(PART_PREFIX)
        ]
        found.sort(key=lambda e: (st.mtime_us(str(e["name"]), e), str(e["name"])))
        return [str(e["name"]) for e in found]

    # -- state and schema

    def read_state(self, pipeline: str, stream: str) -> StreamState | None:
        self._recover(lambda j: j["pipeline"] == pipeline and j["state_key"] == stream)
        path = self.state_path(pipeline, stream)
        if not self.storage.exists(path):
            return None
        raw = self.storage.read_bytes(path)
        try:
            doc = json.loads(raw)
            return StreamState.model_validate(doc["state"])
        except (ValueError, KeyError, TypeError) as e:
            raise StateError(f"stored state of {pipeline=} {stream=} in {path!r} is not readable: {e}") from e

    def table_schema(self, table: str) -> pa.Schema | None:
        self._recover(lambda j: j["table"] == table, table)
        return self._schema_of(table)

    def _schema_of(self, table: str) -> pa.Schema | None:
        st = self.storage
        sidecar = posixpath.join(self.table_dir(table), SCHEMA_FILE)
        if st.exists(sidecar):
            return pa.ipc.read_schema(pa.py_buffer(st.read_bytes(sidecar)))
        for part in self.parts(table):  # Parquet parts written by other tools
            if part.endswith(".parquet"):
                import pyarrow.parquet as pq

                with st.open(part) as f:
                    return pq.read_schema(f)
        return None

    # -- reading back (tests, checks, merge)

    def read_table(self, table: str) -> pa.Table:
        schema = self._require_table(table)
        return pa.Table.from_batches(list(self.iter_table(table, schema)), schema=schema)

    def count_rows(self, table: str) -> int:
        schema = self._require_table(table)
        total = 0
        for part in self.parts(table):
            if part.endswith(".parquet"):
                import pyarrow.parquet as pq

                with self.storage.open(part) as f:
                    total += pq.ParquetFile(f).metadata.num_rows
            else:
                total += sum(b.num_rows for b in self._read_part(table, part, schema, schema))
        return total

    def _require_table(self, table: str) -> pa.Schema:
        self._recover(lambda j: j["table"] == table, table)
        schema = self._schema_of(table)
        if schema is None:
            raise ConfigError(
                f"table {table!r} does not exist under the destination path",
                field="destination.config.path",
                value=self.config.path,
            )
        return schema

    def iter_table(self, table: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Every row of the table, batch by batch, in ``schema`` (cast from the stored types)."""
        stored = self._schema_of(table) or schema
        for part in self.parts(table):
            yield from self._read_part(table, part, stored, schema)

    def _read_part(
        self, table: str, part: str, stored: pa.Schema, schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        """One part, written with the ``stored`` schema, read as ``schema``."""
        fmt = _FORMAT_OF_EXT.get(posixpath.splitext(part)[1])
        if fmt is None:
            raise TableCorruptError(table, part, "unknown part file extension")
        read: Callable[[str, pa.Schema], Iterator[pa.RecordBatch]] = getattr(self, f"_read_{fmt}")
        for batch in read(part, stored):
            fitted, misfits = fit(batch, schema, keep_extra=False)
            if misfits:
                row, column = next(iter(misfits.items()))
                raise TableCorruptError(table, part, f"row {row + 1} column {column!r} does not fit {schema}")
            yield fitted

    def _read_parquet(self, part: str, stored: pa.Schema) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        with self.storage.open(part) as f:
            yield from pq.ParquetFile(f).iter_batches(batch_size=65_536)

    def _read_csv(self, part: str, stored: pa.Schema) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pcsv

        cfg = self.config
        names = csv_columns(self.storage, part, None, cfg) if cfg.header else stored.names
        if not names:
            return
        # pyarrow's CSV reader converts no decimal256: read its text, fit() casts it exactly.
        types = {
            n: pa.string() if pa.types.is_decimal256(t) else t
            for n in names
            if stored.get_field_index(n) >= 0
            for t in [stored.field(n).type]
        }
        with self.storage.open(part) as f:
            reader = pcsv.open_csv(
                f,
                read_options=pcsv.ReadOptions(
                    column_names=None if cfg.header else names, encoding=cfg.encoding
                ),
                parse_options=pcsv.ParseOptions(delimiter=cfg.delimiter),
                # Our CSV writer quotes every string and leaves NULL unquoted and empty.
                # Only the empty cell is NULL: "nan", "NULL", "NA" are values (a float NaN, text).
                convert_options=pcsv.ConvertOptions(
                    column_types=types,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            yield from reader

    def _read_jsonl(self, part: str, stored: pa.Schema) -> Iterator[pa.RecordBatch]:
        text_schema = pa.schema([pa.field(f.name, _json_text_type(f.type), True) for f in stored])
        with self.storage.open(part) as f:
            lines: list[bytes] = []
            for raw in f:
                if raw.strip():
                    lines.append(raw.rstrip(b"\r\n") + b"\n")
                if len(lines) >= 65_536:
                    yield _from_text(read_json_bytes(b"".join(lines), text_schema), stored)
                    lines = []
            if lines:
                yield _from_text(read_json_bytes(b"".join(lines), text_schema), stored)

    # -- recovery of interrupted commits

    def _recover(self, match: Callable[[dict[str, Any]], bool], table: str | None = None) -> None:
        """Complete the interrupted commits of ``table`` (or of any table) that ``match``."""
        st = self.storage
        pattern = st.join(table if table is not None else "*", "_commit-*.json")
        for e in st.glob(pattern):
            path = str(e["name"])
            journal = json.loads(st.read_bytes(path))
            if match(journal):
                self._apply(path, journal)

    def _apply(self, path: str, journal: dict[str, Any]) -> None:
        """Complete a commit from its journal; every step is safe to repeat."""
        st = self.storage
        for src, dst in journal["moves"]:
            if st.exists(src):
                st.move(src, dst)
        st.write_atomic(journal["schema_path"], base64.b64decode(journal["schema"]))
        for old in journal["deletes"]:
            st.remove(old)
        st.write_atomic(journal["state_path"], journal["state"].encode())
        st.remove(journal["staging"])
        st.remove(path)

    def open(self, job: WriteJob) -> LoadTransaction:
        return _FilesLoad(self, job)


class _FilesLoad(LoadTransaction):
    def __init__(self, loader: FilesLoader, job: WriteJob):
        self.loader = loader
        self.st = loader.storage
        self.job = job
        self.cfg = loader.config
        self.fmt: FileFormat = loader.format
        self.table_dir = loader.table_dir(job.table)
        self.staging = posixpath.join(self.table_dir, f"_staging-{job.run_id}")
        self.schema: pa.Schema | None = None
        self.existing: pa.Schema | None = None
        self.writer: _PartWriter | None = None
        self.staged: list[str] = []  # parts to move into place at commit
        self.deletes: list[str] = []  # committed parts this load replaces
        self.merge_batches: list[pa.RecordBatch] = []
        self.taken: set[str] = set()
        self.quarantine_file: IO[Any] | None = None
        self.quarantine_staged = posixpath.join(self.staging, "quarantine.jsonl")
        self.committed = False

    # -- LoadTransaction

    def prepare(self, schema: pa.Schema) -> None:
        self.loader._recover(lambda j: j["table"] == self.job.table, self.job.table)
        _check_format(self.fmt, schema)
        self.schema = schema
        self.existing = self.loader._schema_of(self.job.table)
        for e in self.st.entries(self.table_dir):  # leftovers of loads that never committed
            if posixpath.basename(str(e["name"])).startswith("_staging-"):
                self.st.remove(str(e["name"]))
        self.st.makedirs(self.staging)
        parts = self.loader.parts(self.job.table)
        self.taken = {posixpath.basename(p) for p in parts}
        if (
            self.job.disposition is Disposition.APPEND
            and self.existing is not None
            and _shape(self.existing) != _shape(schema)
        ):
            # Schema evolution: rewrite the existing parts so every part has the table's schema.
            for part in parts:
                self._open_writer()
                for batch in self.loader._read_part(self.job.table, part, self.existing, schema):
                    self._write(batch)
                self._close_writer()
            self.deletes = parts

    def write(self, batch: pa.RecordBatch) -> None:
        if self.job.disposition is Disposition.MERGE:
            self.merge_batches.append(batch)
            return
        limit = self.cfg.max_rows_per_file
        start = 0
        while start < batch.num_rows:
            if self.writer is None or self.writer.rows >= limit:
                self._close_writer()
                self._open_writer()
            assert self.writer is not None
            n = min(batch.num_rows - start, limit - self.writer.rows)
            self.writer.write(batch.slice(start, n))
            start += n

    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        if not rows:
            return
        if self.quarantine_file is None:
            self.quarantine_file = self.st.open(self.quarantine_staged, "wb")
        out = []
        for r in rows:
            doc = {
                "pipeline": self.job.pipeline,
                "stream": self.job.stream.name,
                "table": self.job.table,
                "run_id": self.job.run_id,
                "position": r.position,
                "field": r.field,
                "value": r.value,
                "reason": r.reason,
                "record": r.record,
            }
            out.append(json.dumps(doc, default=str, ensure_ascii=False))
        self.quarantine_file.write(("\n".join(out) + "\n").encode())

    def commit(self, state: StreamState) -> None:
        assert self.schema is not None, "prepare() was not called"
        self._close_writer()
        if self.job.disposition is Disposition.MERGE:
            self._merge()
        elif self.job.disposition is Disposition.OVERWRITE:
            self.deletes = self.loader.parts(self.job.table)
        moves = [[p, posixpath.join(self.table_dir, posixpath.basename(p))] for p in self.staged]
        if self.quarantine_file is not None:
            self.quarantine_file.close()
            self.quarantine_file = None
            moves.append(
                [self.quarantine_staged, self.loader.quarantine_path(self.job.table, self.job.run_id)]
            )
        doc = {
            "pipeline": self.job.pipeline,
            "stream": self.job.stream.state_key,
            "run_id": self.job.run_id,
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
            "state": json.loads(state.to_json()),
        }
        journal = {
            "table": self.job.table,
            "pipeline": self.job.pipeline,
            "state_key": self.job.stream.state_key,
            "run_id": self.job.run_id,
            "moves": moves,
            "deletes": self.deletes,
            "schema_path": posixpath.join(self.table_dir, SCHEMA_FILE),
            "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
            "state_path": self.loader.state_path(self.job.pipeline, self.job.stream.state_key),
            "state": json.dumps(doc),
            "staging": self.staging,
        }
        path = posixpath.join(self.table_dir, f"_commit-{self.job.run_id}.json")
        self.st.write_atomic(path, json.dumps(journal).encode())  # the commit point
        self.committed = True
        self.loader._apply(path, journal)

    def rollback(self) -> None:
        if self.committed:
            # Past the commit point the journal decides: the next loader completes it, so the
            # staged parts it names must stay.
            return
        for closing in (self.writer, self.quarantine_file):
            if closing is not None:
                # The load is abandoned; its files are removed below whatever close() says.
                with contextlib.suppress(Exception):
                    closing.close()
        self.writer = None
        self.quarantine_file = None
        self.st.remove(self.staging)

    # -- helpers

    def _open_writer(self) -> None:
        assert self.schema is not None
        n = len(self.staged)
        while True:
            name = f"{PART_PREFIX}{self.job.run_id}-{n:05d}{_EXTENSIONS[self.fmt]}"
            if name not in self.taken:
                break
            n += 1
        self.taken.add(name)
        path = posixpath.join(self.staging, name)
        self.writer = _PartWriter(self.st, path, self.fmt, self.schema, self.cfg)
        self.staged.append(path)

    def _write(self, batch: pa.RecordBatch) -> None:
        assert self.writer is not None
        self.writer.write(batch)

    def _close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _merge(self) -> None:
        assert self.schema is not None
        schema = self.schema
        old = self.loader.parts(self.job.table)
        stored = self.existing or schema
        existing = [b for p in old for b in self.loader._read_part(self.job.table, p, stored, schema)]
        batches = existing + self.merge_batches
        table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
        merged = dedupe(table, self.job.primary_key, self.job.cursor_field)
        self.deletes = old
        limit = self.cfg.max_rows_per_file
        for start in range(0, merged.num_rows, limit):
            self._open_writer()
            for batch in merged.slice(start, limit).to_batches():
                self._write(batch)
            self._close_writer()


def dedupe(table: pa.Table, key: tuple[str, ...], cursor: str | None) -> pa.Table:
    """Keep one row per ``key``: the greatest ``cursor``, then the latest row; order kept."""
    if not key or table.num_rows == 0:
        return table
    order = "__openfuse_order"
    t = table.append_column(order, pa.array(range(table.num_rows), pa.int64()))
    sort: list[tuple[str, str, str]] = []
    if cursor is not None:
        sort.append((cursor, "descending", "at_end"))
    sort.append((order, "descending", "at_end"))
    ranked = t.take(pc.sort_indices(t, options=pc.SortOptions(sort_keys=sort)))
    rank = "__openfuse_rank"
    ranked = ranked.append_column(rank, pa.array(range(ranked.num_rows), pa.int64()))
    first = ranked.group_by(list(key), use_threads=False).aggregate([(rank, "min")])
    winners = ranked.take(first.column(f"{rank}_min"))
    winners = winners.take(pc.sort_indices(winners, sort_keys=[(order, "ascending")]))
    return winners.drop_columns([order, rank])


class _PartWriter:
    """One part file, written batch by batch."""

    def __init__(self, st: Storage, path: str, fmt: FileFormat, schema: pa.Schema, cfg: FilesConfig):
        self.fmt = fmt
        self.schema = schema
        self.rows = 0
        self.file = st.open(path, "wb")
        self.writer: Any = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(self.file, schema)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            opts = pcsv.WriteOptions(include_header=cfg.header, delimiter=cfg.delimiter)
            self.writer = pcsv.CSVWriter(self.file, schema, write_options=opts)

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is not None:
            self.writer.write_batch(batch)
        else:
            self.file.write(_jsonl(batch))
        self.rows += batch.num_rows

    def close(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self.file.close()


def _jsonl(batch: pa.RecordBatch) -> bytes:
    # Temporal and decimal values are rendered by Arrow (exact, read back by its parsers).
    cols = []
    for col in batch.columns:
        t = col.type
        if pa.types.is_temporal(t) or pa.types.is_decimal(t):
            col = pc.cast(col, pa.string())
        cols.append(col)
    rows = pa.RecordBatch.from_arrays(cols, names=batch.schema.names).to_pylist()
    return "".join(json.dumps(r, ensure_ascii=False, default=_json_value) + "\n" for r in rows).encode()


def _json_value(value: Any) -> Any:
    # Values nested in lists and structs that JSON has no type for.
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} to JSON Lines; use format: parquet")


def _json_text_type(t: pa.DataType) -> pa.DataType:
    # Read as text, cast by fit(): temporal and decimal values, and extension types stored as text
    # (arrow.json), which pyarrow's JSON reader does not convert.
    if isinstance(t, pa.BaseExtensionType) and pa.types.is_string(t.storage_type):
        return pa.string()
    return pa.string() if pa.types.is_temporal(t) or pa.types.is_decimal(t) else t


def _from_text(table: pa.Table, stored: pa.Schema) -> pa.RecordBatch:
    """Turn the text of temporal columns of a JSON Lines part back into values."""
    batch = (
        table.combine_chunks().to_batches()[0]
        if table.num_rows
        else pa.RecordBatch.from_pylist([], schema=stored)
    )
    arrays = []
    for f in stored:
        col = batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        if pa.types.is_time(f.type) and pa.types.is_string(col.type):
            col = pa.array([None if v is None else dt.time.fromisoformat(v) for v in col.to_pylist()], f.type)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, names=stored.names)


def _shape(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in schema]


def _check_format(fmt: FileFormat, schema: pa.Schema) -> None:
    for f in schema:
        t = f.type
        binary = pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
        unsupported = binary or pa.types.is_duration(t) or (fmt == "csv" and pa.types.is_nested(t))
        if fmt != "parquet" and unsupported:
            raise ConfigError(
                f"column {f.name!r} of type {t} cannot be written to {fmt} files; use format: parquet",
                field="destination.config.format",
                value=fmt,
            )
