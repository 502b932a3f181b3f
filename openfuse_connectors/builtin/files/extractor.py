"""Files source: CSV, JSON Lines and Parquet files in a local directory or behind an fsspec URL.

Streams
    A stream name is resolved against the configured ``path``, in this order:

    1. a name with glob characters (``*``, ``?``, ``[``) is a glob relative to ``path``
       (``orders/*.csv``, ``2024-*/events.jsonl``, ``orders/**/*.parquet``);
    2. the path of a file (``orders.csv``) is that file;
    3. the path of a directory (``orders``) is every data file directly inside it;
    4. otherwise a plain name (``orders``) is every top-level file with that stem
       (``orders.csv``, ``orders.csv.gz``).

    Names starting with ``_`` or ``.`` (``_SUCCESS``, staging directories, ``.DS_Store``) are never
    data, at any depth. A file's format is ``format`` when set, else its extension (.csv/.tsv,
    .jsonl/.ndjson, .parquet/.pq, optionally followed by .gz/.bz2/.xz/.zip); a file an explicit
    name or glob matches must then have a known extension. Formats may be mixed within a stream.

    Note that the default destination table of a stream is the part of its name after the last
    dot, so streams named after a file or a glob (``orders/*.csv``) should set
    ``destination_table``.

Discovery
    :meth:`FilesExtractor.discover` lists the top level of ``path`` (not recursively): one stream
    per data file, named by its stem (``orders.csv`` -> ``orders``), and one per directory that
    directly holds data files, named by the directory (``events/part-0.parquet`` -> ``events``;
    the layout the files destination writes). When two files share a stem, or a file's stem is
    also a directory's name, those files are named by their full file name instead.

Schema
    Inferred from the first file of the stream (in path order) that has data: the Parquet schema,
    or pyarrow's inference over the first MiB of a CSV or JSON Lines file, made exact with the
    sampled values: numbers float64 cannot hold are decimals (decimal256 beyond 38 digits, text
    beyond 76), JSON objects whose keys differ are JSON text. Every file of the stream is then read
    with that schema, matched by column name; a missing column is NULL, and a value that does not
    fit its column (a 30-digit number in a float64 one) is quarantined. Two columns are added:

    * ``_modified_at`` - ``timestamp[us, tz=UTC]``, the modification time of the row's file;
    * ``file_column`` (when configured) - the path (or URL) of the row's file.

    A source column with either name is replaced.

Incremental loads
    Use ``cursor_field: _modified_at``. A run with state reads only the files modified at or after
    the stored cursor (inclusive); the engine recognises rows it loaded before at exactly that
    time by their key digest, so a file written with the same modification time as the last
    loaded one is neither lost nor duplicated. Without a primary key the digest covers every
    column, so set ``file_column`` then, or two identical rows of two files stamped with the same
    time would look like one. A file that is rewritten gets a new time and is read whole again
    (use ``incremental_dedupe`` with a primary key if files are updated in place). Any other
    cursor column also works: then every file is read and rows before the cursor are skipped.

Bad input
    A run never stops for one bad row and never drops one silently:

    * A value that does not parse as its column's type (``abc`` in an integer column) is yielded
      as text in that column; the engine's ``conform()`` quarantines the row with the field, value
      and reason. :meth:`FilesExtractor.annotate_quarantine` adds the file and line to such rows.
    * A CSV line with the wrong number of fields and a JSON Lines line that is not a JSON object
      never become rows; they are returned by :meth:`FilesExtractor.take_rejects` as quarantined
      rows naming the file, line and reason, with the raw line as the value.

    A file that cannot be read at all (wrong encoding, not Parquet) fails the stream with
    :class:`~openfuse_connectors.builtin.files.errors.FileReadError` naming the file.
"""

from __future__ import annotations

import bisect
import dataclasses
import posixpath
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.files.config import FilesConfig
from openfuse_connectors.builtin.files.fs import FileRef, Storage, is_hidden, split_name
from openfuse_connectors.builtin.files.readers import FileReader, Piece, infer_schema, open_reader
from openfuse_connectors.catalog import StreamInfo, cursor_candidates
from openfuse_connectors.errors import ConfigError, StateError
from openfuse_connectors.extractor import Extractor, _select
from openfuse_connectors.loader import QuarantinedRow
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import StreamState, key_digests

__all__ = ["MODIFIED_AT", "MODIFIED_AT_TYPE", "FilesExtractor"]

MODIFIED_AT = "_modified_at"
MODIFIED_AT_TYPE = pa.timestamp("us", tz="UTC")
_GLOB_CHARS = frozenset("*?[")


class FilesExtractor(Extractor):
    """CSV, JSON Lines and Parquet files, streamed with bounded memory; incremental by file time."""

    name = "files"
    config_model = FilesConfig
    config: FilesConfig

    def __init__(self, config: FilesConfig):
        super().__init__(config)
        self._storage: Storage | None = None
        self._infos: dict[str, StreamInfo] = {}
        self._rejects: list[QuarantinedRow] = []
        self._lines: dict[int, dict[str, Any]] = {}
        self._file_starts: list[tuple[int, str]] = []
        self._checkpoint: dict[str, Any] = {"files_at_cursor": {}, "mtime_us": None}

    # -- catalog

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = Storage(self.config.path)
        return self._storage

    def _require_root(self) -> Storage:
        st = self.storage
        if not st.isdir(st.root):
            raise ConfigError(
                "files source: path does not exist or is not a directory; point it at the directory "
                "holding the files",
                field="source.config.path",
                value=self.config.path,
            )
        return st

    def check(self) -> None:
        self._require_root().entries(self.storage.root)

    def discover(self) -> list[StreamInfo]:
        return [self._info(name) for name in self._stream_names()]

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        return _select(self._info(stream.name), stream)

    def _stream_names(self) -> list[str]:
        st = self._require_root()
        dirs: list[str] = []
        files: list[str] = []
        for e in st.entries(st.root):
            base = posixpath.basename(str(e["name"]).rstrip("/"))
            if is_hidden(base):
                continue
            if e["type"] == "directory":
                if any(self._is_data(c) for c in st.entries(str(e["name"]))):
                    dirs.append(base)
            elif self._is_data(e):
                files.append(base)
        stems = Counter(split_name(f)[0] for f in files)
        names = list(dirs)
        for f in files:
            stem = split_name(f)[0]
            names.append(stem if stems[stem] == 1 and stem not in dirs else f)
        return sorted(names)

    def _is_data(self, entry: dict[str, Any]) -> bool:
        base = posixpath.basename(str(entry["name"]))
        if entry["type"] != "file" or is_hidden(base):
            return False
        return self.config.format is not None or split_name(base)[1] is not None

    def _files(self, name: str) -> list[FileRef]:
        """The files of a stream, in path order (see the module docstring for the rules)."""
        st = self._require_root()
        refs: list[FileRef] = []
        if _GLOB_CHARS & set(name):
            for e in st.glob(st.join(name)):
                rel = st.relative(str(e["name"]))
                if e["type"] == "file" and not any(is_hidden(p) for p in rel.split("/")):
                    refs.append(self._ref(e, explicit=True))
        else:
            target = st.join(name)
            if st.isfile(target):
                refs.append(self._ref(st.fs.info(target), explicit=True))
            elif st.isdir(target):
                refs.extend(self._ref(e, explicit=False) for e in st.entries(target) if self._is_data(e))
            if not refs:
                for e in st.entries(st.root):
                    if self._is_data(e) and split_name(posixpath.basename(str(e["name"])))[0] == name:
                        refs.append(self._ref(e, explicit=False))
        if not refs:
            raise ConfigError(
                f"stream {name!r} matches no data file under {self.config.path!r}; a stream is a glob, "
                "a file or directory path, or a file stem relative to path",
                field=f"streams[{name}].name",
                value=name,
            )
        return refs

    def _ref(self, entry: dict[str, Any], *, explicit: bool) -> FileRef:
        path = str(entry["name"])
        _, fmt, compression = split_name(posixpath.basename(path))
        fmt = self.config.format or fmt
        if fmt is None:
            raise ConfigError(
                f"cannot tell the format of {self.storage.display(path)!r} from its extension; "
                "set format: csv, jsonl or parquet",
                field="source.config.format",
                value=posixpath.basename(path),
            )
        st = self.storage
        size = entry.get("size")
        return FileRef(
            path,
            st.display(path),
            st.mtime_us(path, entry),
            fmt,
            compression,
            int(size) if size is not None else None,
        )

    def _info(self, name: str) -> StreamInfo:
        if name in self._infos:
            return self._infos[name]
        files = self._files(name)
        data: pa.Schema | None = None
        for ref in files:
            found = infer_schema(self.storage, ref, self.config)
            if found is not None:
                # A file with columns but no rows (a CSV header) only counts if nothing better comes.
                data = found[0] if data is None or found[1] else data
                if found[1]:
                    break
        added = self._added_fields()
        added_names = {f.name for f in added}
        fields = [f for f in (data or pa.schema([])) if f.name not in added_names]
        schema = pa.schema([*fields, *added])
        info = StreamInfo(
            name,
            schema,
            (),
            (MODIFIED_AT, *(c for c in cursor_candidates(pa.schema(fields)))),
            {"files": len(files), "formats": sorted({r.format for r in files})},
        )
        self._infos[name] = info
        return info

    def _added_fields(self) -> list[pa.Field]:
        out = []
        if self.config.file_column:
            out.append(pa.field(self.config.file_column, pa.string(), False))
        out.append(pa.field(MODIFIED_AT, MODIFIED_AT_TYPE, False))
        return out

    # -- reading

    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        self._rejects = []
        self._lines = {}
        self._file_starts = []
        full = self._info(stream.name)
        info = _select(full, stream)
        added = {f.name for f in self._added_fields()}
        data_schema = pa.schema([f for f in full.schema if f.name not in added])
        columns = None if stream.columns is None else frozenset(info.schema.names)
        files = sorted(self._files(stream.name), key=lambda r: (r.mtime_us, r.path))

        cursor = state.cursor if state is not None and stream.cursor_field else None
        since: int | None = None
        row_cursor: pa.Scalar | None = None
        if cursor is not None:
            if cursor.field != stream.cursor_field:
                raise StateError(
                    f"stream {stream.name!r}: stored cursor is on {cursor.field!r} but cursor_field is "
                    f"{stream.cursor_field!r}; run with full_refresh to start over"
                )
            if cursor.field == MODIFIED_AT:
                since = pc.cast(cursor.to_scalar(), MODIFIED_AT_TYPE).value
                files = [r for r in files if r.mtime_us >= since]
            else:
                row_cursor = cursor.to_scalar()
        boundary = frozenset(state.boundary_keys) if state is not None else frozenset()
        # Files already loaded whole at exactly the cursor time are not read again (the checkpoint
        # of the last run lists them with their size): a rerun with nothing new reads nothing.
        done = _files_at(state) if since is not None else {}
        files = [r for r in files if not (r.mtime_us == since and done.get(r.url) == [r.mtime_us, r.size])]
        self._checkpoint = {"files_at_cursor": done, "mtime_us": since}

        position = 0
        for ref in files:
            self._file_starts.append((position, ref.url))
            reader = open_reader(
                self.storage, ref, data_schema, self.config, batch_size=batch_size, columns=columns
            )
            # A file at exactly the cursor time may have been loaded by the last run: then its
            # rejects were reported then, and are not reported again.
            loaded_before: bool | None = (
                None if since is not None and ref.mtime_us == since and boundary else False
            )
            try:
                for piece in reader.pieces():
                    batch, misfits, line = self._finish(piece, ref, info.schema, columns is None)
                    if row_cursor is not None and stream.cursor_field:
                        batch, misfits, line = _since_cursor(
                            batch, misfits, line, stream.cursor_field, row_cursor
                        )
                    for start in range(0, batch.num_rows, batch_size):
                        part = batch.slice(start, batch_size)
                        if loaded_before is None:
                            first = key_digests(part.slice(0, 1), part.schema.names)[0]
                            loaded_before = first in boundary
                        self._flush(reader, ref, position, loaded_before)
                        for row in sorted(r for r in misfits if start <= r < start + part.num_rows):
                            self._lines[position + row - start] = {
                                "_file": ref.url,
                                f"_{reader.unit}": line(row),
                            }
                        yield part
                        position += part.num_rows
                self._flush(reader, ref, position, bool(loaded_before))
            finally:
                reader.close()
            ck = self._checkpoint
            if ck["mtime_us"] is None or ref.mtime_us > ck["mtime_us"]:
                ck["mtime_us"], ck["files_at_cursor"] = ref.mtime_us, {}
            if ref.mtime_us == ck["mtime_us"]:
                ck["files_at_cursor"][ref.url] = [ref.mtime_us, ref.size]

    def checkpoint(self) -> dict[str, Any] | None:
        """The files read whole at the newest modification time (see :meth:`read`)."""
        return self._checkpoint

    def _finish(
        self, piece: Piece, ref: FileRef, schema: pa.Schema, keep_extra: bool
    ) -> tuple[pa.RecordBatch, dict[int, str], Any]:
        """Add the file columns and put the batch in the stream's (selected) column order."""
        b = piece.batch
        n = b.num_rows
        added: dict[str, pa.Array] = {MODIFIED_AT: pa.repeat(pa.scalar(ref.mtime_us, MODIFIED_AT_TYPE), n)}
        if self.config.file_column:
            added[self.config.file_column] = pa.repeat(pa.scalar(ref.url, pa.string()), n)
        arrays = []
        fields = []
        for f in schema:
            if f.name in added:
                arrays.append(added[f.name])
                fields.append(f)
            else:
                i = b.schema.get_field_index(f.name)
                arrays.append(b.column(i))
                fields.append(b.schema.field(i))
        if keep_extra:
            names = set(schema.names)
            for i, name in enumerate(b.schema.names):
                if name not in names and name not in added:
                    arrays.append(b.column(i))
                    fields.append(b.schema.field(i))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), piece.misfits, piece.line

    def _flush(self, reader: FileReader, ref: FileRef, position: int, suppress: bool) -> None:
        if suppress:
            reader.rejects = []
            return
        for rj in reader.take_rejects():
            self._rejects.append(
                QuarantinedRow(
                    position=position,
                    field=None,
                    value=rj.text,
                    reason=f"{rj.reason} (file={ref.url} line={rj.line})",
                    record={"_file": ref.url, "_line": rj.line, "_text": rj.text},
                )
            )

    # -- quarantine hooks for the engine

    def take_rejects(self) -> list[QuarantinedRow]:
        """Lines read so far that never became rows, each once; call after every batch.

        Each carries ``field=None``, the raw line as ``value``, a reason naming the file and line,
        and ``record={"_file", "_line", "_text"}``. ``position`` is the number of rows this read
        had yielded when the line was met, so it sorts next to its neighbours.
        """
        out, self._rejects = self._rejects, []
        return out

    def annotate_quarantine(self, rows: list[QuarantinedRow]) -> list[QuarantinedRow]:
        """Add the source file and line (``_file``, ``_line`` or ``_row`` for Parquet) to rows the
        engine quarantined from batches of the current read, by their stream position."""
        out = []
        for r in rows:
            where = self._lines.pop(r.position, None) or self._file_of(r.position)
            if not where:
                out.append(r)
                continue
            text = " ".join(f"{k.lstrip('_')}={v}" for k, v in where.items())
            out.append(dataclasses.replace(r, reason=f"{r.reason} ({text})", record={**r.record, **where}))
        return out

    def _file_of(self, position: int) -> dict[str, Any] | None:
        i = bisect.bisect_right(self._file_starts, (position, "\U0010ffff")) - 1
        return {"_file": self._file_starts[i][1]} if i >= 0 else None


def _files_at(state: StreamState | None) -> dict[str, list[Any]]:
    src = (state.extra.get("source") or {}) if state is not None else {}
    files = src.get("files_at_cursor") if isinstance(src, dict) else None
    return dict(files) if isinstance(files, dict) else {}


def _since_cursor(
    batch: pa.RecordBatch, misfits: dict[int, str], line: Any, field: str, cursor: pa.Scalar
) -> tuple[pa.RecordBatch, dict[int, str], Any]:
    """Keep rows with ``field >= cursor`` (and rows whose cursor value does not parse: they are
    quarantined downstream rather than skipped)."""
    col = batch.column(field)
    try:
        typed = col if col.type == cursor.type else pc.cast(col, cursor.type, safe=True)
        mask = pc.fill_null(pc.greater_equal(typed, cursor), False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        flags = []
        for v in col.to_pylist():
            try:
                one = pc.cast(pa.array([v], col.type), cursor.type, safe=True)
                flags.append(bool(pc.fill_null(pc.greater_equal(one, cursor), False)[0].as_py()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                flags.append(True)
        mask = pa.array(flags, pa.bool_())
    keep = pc.indices_nonzero(mask).to_pylist()
    if len(keep) == batch.num_rows:
        return batch, misfits, line
    new_misfits = {new: misfits[old] for new, old in enumerate(keep) if old in misfits}
    return batch.take(pa.array(keep, pa.int64())), new_misfits, lambda i: line(keep[i])
