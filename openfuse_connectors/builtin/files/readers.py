"""Streaming readers for CSV, JSON Lines and Parquet files.

Memory stays bounded by one block (CSV), one chunk of lines (JSON Lines) or one row group batch
(Parquet). Each reader yields :class:`Piece` s: a record batch fitted *by name* to the stream
schema, plus the rows holding a value that does not fit. Such a column keeps its source type (the
text of a CSV cell, for instance), so the engine's ``conform()`` quarantines exactly those rows
with the field, value and reason.

Inferred types hold every sampled value exactly: pyarrow's inference, then numbers it reads as
float64 that float64 cannot hold (38-digit decimals, integers beyond int64) become decimals (or
text), and JSON objects whose keys differ become JSON text rather than a struct that would turn a
missing key into null. Text parsed into float64 later must be exact too (``cast_exact``). Lines that never become a row (a CSV line with the wrong number
of fields, a line that is not JSON) are handed over by :meth:`FileReader.take_rejects`.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.files.config import FilesConfig
from openfuse_connectors.builtin.files.errors import FileReadError
from openfuse_connectors.builtin.files.fs import FileRef, Storage
from openfuse_connectors.conform import cast_exact, float_exact

__all__ = [
    "FileReader",
    "Piece",
    "Reject",
    "csv_columns",
    "fit",
    "infer_schema",
    "json_text",
    "number_type",
    "open_reader",
    "read_json_bytes",
]

#: Bytes of the first file sampled to infer a schema.
SAMPLE_BYTES = 1 << 20
#: Upper bound of one CSV block / JSON Lines chunk.
MAX_CHUNK_BYTES = 16 << 20
#: Longest raw line text kept in a reject.
MAX_TEXT = 4000

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@dataclass(frozen=True)
class Reject:
    """A line that did not become a row."""

    line: int | None
    reason: str
    text: str | None


@dataclass(frozen=True)
class Piece:
    """Part of a file as a batch.

    Attributes:
        batch: the stream's data columns in schema order (source types kept where a value does not
            fit), followed by columns the schema does not know.
        misfits: row -> name of the first column whose value does not fit the schema type.
        line: row -> line number (CSV, JSON Lines) or 1-based row number (Parquet) in the file.
    """

    batch: pa.RecordBatch
    misfits: dict[int, str]
    line: Callable[[int], int | None]


def fit(
    batch: pa.RecordBatch,
    schema: pa.Schema,
    *,
    keep_extra: bool = True,
    null_values: pa.Array | None = None,
) -> tuple[pa.RecordBatch, dict[int, str]]:
    """Fit ``batch`` to ``schema`` by column name.

    Columns are cast when every value fits; otherwise the column keeps its source type and the rows
    whose value does not fit are returned. Missing columns are NULL. Columns the schema does not
    know follow (when ``keep_extra``), so the engine can quarantine rows that carry them instead of
    dropping their values silently.

    Args:
        null_values: for text read from CSV, the cells that mean NULL in a non-text column.
    """
    n = batch.num_rows
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    misfits: dict[int, str] = {}
    names = batch.schema.names
    for f in schema:
        i = batch.schema.get_field_index(f.name)
        if i < 0:
            arrays.append(pa.nulls(n, f.type))
            fields.append(f)
            continue
        col = batch.column(i)
        if col.type == f.type:
            arrays.append(col)
            fields.append(f)
            continue
        text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        if null_values is not None and text and not pa.types.is_string(f.type):
            nulls = null_values
            if pa.types.is_floating(f.type):  # "nan" is a value of a float column, not NULL
                nulls = pc.filter(nulls, pc.invert(pc.is_in(pc.utf8_lower(nulls), value_set=_NAN_TEXT)))
            col = pc.if_else(pc.is_in(col, value_set=nulls), pa.scalar(None, col.type), col)
        try:
            arrays.append(cast_exact(col, f.type))
            fields.append(f)
        except _CAST_ERRORS:
            for row in _misfit_rows(col, f.type):
                misfits.setdefault(row, f.name)
            arrays.append(col)
            fields.append(pa.field(f.name, col.type, True, f.metadata))
    if keep_extra:
        known = set(schema.names)
        for i, name in enumerate(names):
            if name not in known:
                arrays.append(batch.column(i))
                fields.append(batch.schema.field(i))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), misfits


_NAN_TEXT = pa.array(["nan", "-nan", "+nan"], pa.string())


def number_type(values: Iterable[int | Decimal]) -> pa.DataType:
    """The type of a column of sampled numbers that holds every one exactly.

    float64 when it holds each as its shortest text; else the decimal that holds them all
    (decimal128 up to 38 digits, decimal256 up to 76); else (or with NaN / infinity among them)
    string, the number's own text.
    """
    ints = scale = 0
    floats, special = True, False
    for v in values:
        d = Decimal(v) if isinstance(v, int) else v
        if not d.is_finite():
            special = True
            continue
        if floats and not float_exact(d):
            floats = False
        _, digits, exp = d.as_tuple()
        assert isinstance(exp, int)
        scale = max(scale, -exp)
        ints = max(ints, len(digits) + exp)
    if floats:
        return pa.float64()
    precision = max(ints + scale, 1)
    if special or precision > 76:
        return pa.string()
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def json_text(value: Any) -> str:
    """JSON text of a parsed value, numbers parsed as :class:`~decimal.Decimal` kept digit for digit."""
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{json_text(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _misfit_rows(col: pa.Array, target: pa.DataType) -> list[int]:
    # Only on the error path: find the values that do not fit, one by one.
    out = []
    for i, v in enumerate(col.to_pylist()):
        if v is None:
            continue
        try:
            cast_exact(pa.array([v], col.type), target)
        except _CAST_ERRORS:
            out.append(i)
    return out


def _text(raw: str | bytes | None) -> str | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


class FileReader(ABC):
    """Reads one file as pieces fitted to the stream schema."""

    #: What :attr:`Piece.line` numbers: ``line`` (text formats) or ``row`` (Parquet).
    unit: ClassVar[str] = "line"

    def __init__(
        self,
        storage: Storage,
        ref: FileRef,
        schema: pa.Schema,
        config: FilesConfig,
        *,
        batch_size: int,
        columns: frozenset[str] | None = None,
    ):
        self.storage = storage
        self.ref = ref
        self.schema = schema
        self.config = config
        self.batch_size = batch_size
        self.columns = columns
        self.rejects: list[Reject] = []
        self._open: list[IO[Any]] = []

    @abstractmethod
    def pieces(self) -> Iterator[Piece]: ...

    def _openfile(self, mode: str = "rb") -> IO[Any]:
        f = self.storage.open(self.ref.path, mode, self.ref.compression)
        self._open.append(f)
        return f

    def _fit(
        self, batch: pa.RecordBatch, null_values: pa.Array | None = None
    ) -> tuple[pa.RecordBatch, dict[int, str]]:
        return fit(batch, self.schema, keep_extra=self.columns is None, null_values=null_values)

    def take_rejects(self) -> list[Reject]:
        """The lines rejected so far (each once), with their line numbers in the file."""
        out, self.rejects = self.rejects, []
        return out

    def close(self) -> None:
        while self._open:
            self._open.pop().close()


# -- CSV


def _py_encoding(name: str) -> str:
    enc = codecs.lookup(name).name
    return "utf-8-sig" if enc == "utf-8" else enc


def csv_columns(storage: Storage, path: str, compression: str | None, config: FilesConfig) -> list[str]:
    """Column names of a CSV file (``f0, f1, ...`` without a header); [] for an empty file."""
    with storage.open(path, "rb", compression) as raw:
        text = io.TextIOWrapper(raw, encoding=_py_encoding(config.encoding), errors="replace", newline="")
        first = ""
        for line in text:  # pyarrow skips empty lines before the header too
            first = line.rstrip("\r\n")
            if first:
                break
        text.detach()
    if not first:
        return []
    fields = next(csv.reader([first], delimiter=config.delimiter), [])
    return fields if config.header else [f"f{i}" for i in range(len(fields))]


def _csv_options(config: FilesConfig, block_size: int, handler: Callable[[Any], str]) -> tuple[Any, Any]:
    import pyarrow.csv as pcsv

    read = pcsv.ReadOptions(
        use_threads=False,  # invalid-row line numbers are only known to the serial reader
        block_size=block_size,
        encoding=config.encoding,
        autogenerate_column_names=not config.header,
    )
    parse = pcsv.ParseOptions(delimiter=config.delimiter, invalid_row_handler=handler)
    return read, parse


def infer_csv(storage: Storage, ref: FileRef, config: FilesConfig) -> tuple[pa.Schema, bool] | None:
    import pyarrow.csv as pcsv

    if not csv_columns(storage, ref.path, ref.compression, config):
        return None
    read, parse = _csv_options(config, SAMPLE_BYTES, lambda row: "skip")
    with storage.open(ref.path, "rb", ref.compression) as f:
        try:
            reader = pcsv.open_csv(f, read_options=read, parse_options=parse)
            schema = reader.schema
            try:
                rows = reader.read_next_batch().num_rows > 0
            except StopIteration:
                rows = False
        except pa.ArrowInvalid as e:
            raise FileReadError(ref.url, str(e), _CSV_HINT) from e
    doubles = [fld.name for fld in schema if pa.types.is_floating(fld.type)]
    numbers = _csv_number_types(storage, ref, config, doubles) if doubles and rows else {}
    fields = []
    for fld in schema:
        t = numbers.get(fld.name, fld.type)
        # Text that the cast kernels cannot parse back (time of day) or no value at all: keep as text.
        if pa.types.is_null(t) or pa.types.is_time(t):
            t = pa.string()
        fields.append(pa.field(fld.name, t, True))
    return pa.schema(fields), rows


def _csv_number_types(
    storage: Storage, ref: FileRef, config: FilesConfig, names: list[str]
) -> dict[str, pa.DataType]:
    """For the columns pyarrow infers as float64 (any number beyond int64 too): the type that holds
    every sampled number exactly (:func:`number_type`), from the sample's text."""
    import pyarrow.csv as pcsv

    read, parse = _csv_options(config, SAMPLE_BYTES, lambda row: "skip")
    # The inference's NULL spellings ("nan" among them: a float either way).
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), include_columns=names, strings_can_be_null=True
    )
    with storage.open(ref.path, "rb", ref.compression) as f:
        try:
            batch = pcsv.open_csv(
                f, read_options=read, parse_options=parse, convert_options=convert
            ).read_next_batch()
        except (pa.ArrowInvalid, StopIteration):
            return {}
    out: dict[str, pa.DataType] = {}
    for name in names:
        try:
            values = [Decimal(v.strip()) for v in batch.column(name).to_pylist() if v is not None]
        except InvalidOperation:
            continue
        out[name] = number_type(values)
    return out


_CSV_HINT = "Check the delimiter, header and encoding settings of the source"


class CsvReader(FileReader):
    """Reads every column as text, then casts it to the stream type (see :func:`fit`)."""

    def pieces(self) -> Iterator[Piece]:
        import pyarrow.csv as pcsv

        names = csv_columns(self.storage, self.ref.path, self.ref.compression, self.config)
        if not names:
            return
        skipped: list[int] = []  # pyarrow row numbers of malformed lines, ascending

        def on_invalid(row: Any) -> str:
            if row.number is not None:
                skipped.append(row.number)
            self.rejects.append(
                Reject(
                    row.number,
                    f"malformed CSV line: expected {row.expected_columns} fields, found {row.actual_columns}",
                    _text(row.text),
                )
            )
            return "skip"

        types = {}
        for name in names:
            i = self.schema.get_field_index(name)
            binary = i >= 0 and pa.types.is_binary(self.schema.field(i).type)
            types[name] = pa.binary() if binary else pa.string()
        include = [n for n in names if self.columns is None or n in self.columns]
        # An unquoted empty cell is NULL, a quoted one ("") the empty string: what the writer emits.
        convert = pcsv.ConvertOptions(
            column_types=types,
            include_columns=include,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        block = max(1 << 16, min(MAX_CHUNK_BYTES, self.batch_size * 64))
        read, parse = _csv_options(self.config, block, on_invalid)
        self._lines = _CsvLines(self, 1 if self.config.header else 0, skipped)
        # Cells meaning NULL in a non-text column (NULL, NA, N/A, ...: pyarrow's default list).
        null_values = pa.array(pcsv.ConvertOptions().null_values, pa.string())
        f = self._openfile()
        row = 0
        try:
            reader = pcsv.open_csv(f, read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                fitted, misfits = self._fit(batch, null_values)
                yield Piece(fitted, misfits, _offset(self._lines.data_row, row))
                row += batch.num_rows
        except pa.ArrowInvalid as e:
            raise FileReadError(self.ref.url, str(e), _CSV_HINT) from e

    def take_rejects(self) -> list[Reject]:
        out = super().take_rejects()
        lines = getattr(self, "_lines", None)
        if lines is None:
            return out
        return [Reject(lines.physical(r.line) if r.line else None, r.reason, r.text) for r in out]


def _offset(fn: Callable[[int], int | None], start: int) -> Callable[[int], int | None]:
    return lambda i: fn(start + i)


def _one_based(row: int) -> int | None:
    return row + 1


class _CsvLines:
    """Physical line numbers in a CSV file.

    pyarrow numbers the rows it parses (the header and malformed rows included) but skips empty
    lines without counting them, and does not number the rows it returns. So this reads the file
    a second time, only as far as needed and only when something has to be located (a malformed
    line, a value that does not fit), remembering where empty lines were.
    """

    def __init__(self, reader: FileReader, header_rows: int, skipped: list[int]):
        self.reader = reader
        self.header_rows = header_rows
        self.skipped = skipped
        self.text: IO[str] | None = None
        self.counted = 0  # non-empty lines read so far
        self.empty = 0  # empty lines read so far
        self.marks: list[int] = []  # non-empty line numbers preceded by new empty lines ...
        self.before: list[int] = []  # ... and how many empty lines come before each

    def physical(self, n: int) -> int | None:
        """The line of pyarrow's row number ``n`` (1-based, counting non-empty lines)."""
        if self.text is None:
            raw = self.reader._openfile()
            self.text = io.TextIOWrapper(
                raw, encoding=_py_encoding(self.reader.config.encoding), errors="replace"
            )
        pending = False
        while self.counted < n:
            line = self.text.readline()
            if not line:
                return None
            if line == "\n":
                self.empty += 1
                pending = True
                continue
            self.counted += 1
            if pending:
                self.marks.append(self.counted)
                self.before.append(self.empty)
                pending = False
        i = bisect.bisect_right(self.marks, n) - 1
        return n + (self.before[i] if i >= 0 else 0)

    def data_row(self, k: int) -> int | None:
        """The line of the k-th (0-based) row the reader returned."""
        n = self.header_rows + k + 1
        for s in self.skipped:
            if s > n:
                break
            n += 1
        return self.physical(n)


# -- JSON Lines


def _json_read_type(t: pa.DataType) -> pa.DataType:
    # The JSON reader parses numbers, strings, booleans, timestamps and nesting; other types are
    # read as text and cast afterwards.
    if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.string()
    if pa.types.is_dictionary(t) or pa.types.is_duration(t):
        return pa.string()
    # Decimals are parsed by pyarrow from JSON numbers (every digit) and strings alike.
    return t


def json_read_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _json_read_type(f.type), True) for f in schema])


def read_json_bytes(data: bytes, schema: pa.Schema | None) -> pa.Table:
    import pyarrow.json as pjson

    parse = pjson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="infer", newlines_in_values=False
    )
    read = pjson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
    return pjson.read_json(io.BytesIO(data), read_options=read, parse_options=parse)


def infer_jsonl(storage: Storage, ref: FileRef, config: FilesConfig) -> tuple[pa.Schema, bool] | None:
    """pyarrow's inference over the sample, made exact with the sample's own values.

    A number column pyarrow reads as float64 gets the type that holds every sampled number
    (:func:`number_type`: a decimal for 38 digits, an integer beyond int64); a nested column
    whose objects do not all have the same keys (a struct would turn a missing key into null),
    or whose numbers float64 cannot hold, is JSON text.
    """
    sample: list[bytes] = []
    objects: list[dict[str, Any]] = []
    size = 0
    with storage.open(ref.path, "rb", ref.compression) as f:
        for raw in f:
            if size >= SAMPLE_BYTES:
                break
            line = raw.removeprefix(codecs.BOM_UTF8) if not sample else raw
            try:
                obj = json.loads(line, parse_float=Decimal)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                sample.append(line.rstrip(b"\r\n") + b"\n")
                objects.append(obj)
                size += len(line)
    if not sample:
        return None
    try:
        tab = read_json_bytes(b"".join(sample), None)
    except pa.ArrowInvalid:
        # Values of mixed types in the sample: infer from the first object only.
        tab = read_json_bytes(sample[0], None)
    fields = []
    for f in tab.schema:
        t = f.type
        values = [o.get(f.name) for o in objects]
        if pa.types.is_null(t):
            t = pa.string()
        elif pa.types.is_floating(t):
            numbers = [v for v in values if v is not None]
            plain = all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in numbers)
            t = number_type(numbers) if plain else t
        elif pa.types.is_nested(t) and not _holds(t, values):
            t = pa.string()
        fields.append(pa.field(f.name, t, True))
    return pa.schema(fields), True


#: Where a JSON number may have more digits than float64 holds (16 or more, or a 3-digit
#: exponent): only then are a chunk's float64 values checked one by one.
_LONG_NUMBER = re.compile(rb"(?:\d\.?){16}|[eE][+-]?\d{3}")


def _number(v: Any) -> bool:
    return isinstance(v, int | Decimal) and not isinstance(v, bool)


def _holds(t: pa.DataType, values: list[Any]) -> bool:
    """Whether every sampled (nested) value keeps its exact form in ``t``."""
    present = [v for v in values if v is not None]
    if pa.types.is_floating(t):
        return all(
            isinstance(v, int | Decimal) and not isinstance(v, bool) and float_exact(Decimal(v))
            for v in present
        )
    if pa.types.is_struct(t):
        names = {f.name for f in t}
        if any(not isinstance(v, dict) or set(v) != names for v in present):
            return False
        return all(_holds(f.type, [v[f.name] for v in present]) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return all(isinstance(v, list) for v in present) and _holds(
            t.value_type, [x for v in present for x in v]
        )
    return not pa.types.is_nested(t)


class JsonlReader(FileReader):
    """Parses chunks of lines with pyarrow; a chunk that fails is split until the bad lines are found."""

    def pieces(self) -> Iterator[Piece]:
        self._read_schema = json_read_schema(self.schema)
        self._text_columns = [f.name for f in self.schema if pa.types.is_string(f.type)]
        self._float_columns = [f.name for f in self.schema if pa.types.is_float64(f.type)]
        f = self._openfile()
        chunk: list[tuple[int, bytes]] = []
        size = 0
        for lineno, raw in enumerate(f, start=1):
            line = raw.removeprefix(codecs.BOM_UTF8) if lineno == 1 else raw
            if not line.strip():
                continue
            chunk.append((lineno, line.rstrip(b"\r\n") + b"\n"))
            size += len(line)
            if len(chunk) >= self.batch_size or size >= MAX_CHUNK_BYTES:
                yield from self._parse(chunk)
                chunk, size = [], 0
        if chunk:
            yield from self._parse(chunk)

    def _try(self, lines: list[tuple[int, bytes]]) -> pa.Table | None:
        data = b"".join(raw for _, raw in lines)
        try:
            tab = read_json_bytes(data, self._read_schema)
        except pa.ArrowInvalid:
            # Objects and arrays in text columns (JSON text): pyarrow reads no nested value as text.
            nested = self._nested_as_text(lines) if self._text_columns else None
            if nested is None:
                return None
            try:
                tab = read_json_bytes(nested, self._read_schema)
            except pa.ArrowInvalid:
                return None
        # Two objects on one line would shift every line number after them: treat as bad.
        return tab if tab.num_rows == len(lines) else None

    def _exact_floats(self, lines: list[tuple[int, bytes]], batch: pa.RecordBatch) -> pa.RecordBatch:
        """pyarrow parses any JSON number into float64, rounding without a word: where a float64
        column gets a number it does not hold exactly, the column goes on as the numbers' text,
        so that fit() and the engine quarantine exactly those values."""
        if not self._float_columns or not _LONG_NUMBER.search(b"".join(raw for _, raw in lines)):
            return batch
        objs = [json.loads(raw, parse_float=Decimal) for _, raw in lines]  # pyarrow parsed them
        for name in self._float_columns:
            i = batch.schema.get_field_index(name)
            values = [o.get(name) if isinstance(o, dict) else None for o in objs]
            if i < 0 or all(v is None or not _number(v) or float_exact(Decimal(v)) for v in values):
                continue
            text = [None if v is None else json_text(v) for v in values]
            batch = batch.set_column(i, name, pa.array(text, pa.string()))
        return batch

    def _nested_as_text(self, lines: list[tuple[int, bytes]]) -> bytes | None:
        """The lines with the objects and arrays of text columns replaced by their exact JSON text;
        None when there are none, or a line is not a JSON object."""
        out = []
        changed = False
        for _, raw in lines:
            try:
                obj = json.loads(raw, parse_float=Decimal)
            except ValueError:
                return None
            if not isinstance(obj, dict):
                return None
            for name in self._text_columns:
                v = obj.get(name)
                if isinstance(v, dict | list):
                    obj[name] = json_text(v)
                    changed = True
            out.append(json_text(obj).encode() + b"\n")
        return b"".join(out) if changed else None

    def _segments(
        self, lines: list[tuple[int, bytes]], out: list[tuple[list[tuple[int, bytes]], pa.Table | None]]
    ) -> None:
        tab = self._try(lines)
        if tab is not None or len(lines) == 1:
            out.append((lines, tab))
            return
        mid = len(lines) // 2
        self._segments(lines[:mid], out)
        self._segments(lines[mid:], out)

    def _parse(self, chunk: list[tuple[int, bytes]]) -> Iterator[Piece]:
        segments: list[tuple[list[tuple[int, bytes]], pa.Table | None]] = []
        self._segments(chunk, segments)
        for lines, tab in segments:
            numbers = [n for n, _ in lines]
            if tab is None:
                n, raw = lines[0]
                try:
                    record = json.loads(raw, parse_float=Decimal)
                except ValueError as e:
                    self.rejects.append(Reject(n, f"invalid JSON: {e}", _text(raw)))
                    continue
                if not isinstance(record, dict):
                    self.rejects.append(Reject(n, f"not a JSON object: {type(record).__name__}", _text(raw)))
                    continue
                batch = self._record_batch(record)
            elif tab.num_rows == 0:
                continue
            else:
                batch = self._exact_floats(lines, tab.combine_chunks().to_batches()[0])
            fitted, misfits = self._fit(batch)
            yield Piece(fitted, misfits, numbers.__getitem__)

    def _record_batch(self, record: dict[str, Any]) -> pa.RecordBatch:
        """One valid JSON object whose values pyarrow would not read as the stream types."""
        arrays = []
        names = []
        for f in self.schema:
            arrays.append(_one(record.get(f.name), f.type))
            names.append(f.name)
        for k, v in record.items():
            if self.schema.get_field_index(k) < 0:
                arrays.append(_one(v, None))
                names.append(k)
        return pa.RecordBatch.from_arrays(arrays, names=names)


def _one(value: Any, t: pa.DataType | None) -> pa.Array:
    # Numbers were parsed as Decimal (every digit kept); a decimal column takes them as they are,
    # other types get the float JSON parsers give when it is exact (a Decimal would be truncated
    # into an integer column without a word), else the number's text.
    plain = value if t is not None and pa.types.is_decimal(t) else _floats(value)
    try:
        return pa.array([plain], t)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        TypeError,
        ValueError,
        OverflowError,
    ):
        # Keep the value as text: fit() casts it if it parses, else the engine quarantines it.
        return pa.array([value if isinstance(value, str) else json_text(value)], pa.string())


def _floats(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if float_exact(value) else str(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


# -- Parquet


def infer_parquet(storage: Storage, ref: FileRef, config: FilesConfig) -> tuple[pa.Schema, bool] | None:
    import pyarrow.parquet as pq

    with storage.open(ref.path, "rb", ref.compression) as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as e:
            raise FileReadError(
                ref.url, str(e), "Is it a Parquet file? Set format if the extension is misleading"
            ) from e
        schema = pf.schema_arrow
        rows = pf.metadata.num_rows > 0
    return pa.schema([pa.field(f.name, f.type, True, f.metadata) for f in schema]), rows


class ParquetReader(FileReader):
    unit = "row"

    def pieces(self) -> Iterator[Piece]:
        import pyarrow.parquet as pq

        f = self._openfile()
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as e:
            raise FileReadError(self.ref.url, str(e), "Is it a Parquet file?") from e
        names = pf.schema_arrow.names
        cols = None if self.columns is None else [n for n in names if n in self.columns] or None
        row = 0
        for batch in pf.iter_batches(batch_size=self.batch_size, columns=cols):
            fitted, misfits = self._fit(batch)
            yield Piece(fitted, misfits, _offset(_one_based, row))
            row += batch.num_rows


_READERS: dict[str, type[FileReader]] = {"csv": CsvReader, "jsonl": JsonlReader, "parquet": ParquetReader}
_INFER: dict[str, Callable[[Storage, FileRef, FilesConfig], tuple[pa.Schema, bool] | None]] = {
    "csv": infer_csv,
    "jsonl": infer_jsonl,
    "parquet": infer_parquet,
}


def infer_schema(storage: Storage, ref: FileRef, config: FilesConfig) -> tuple[pa.Schema, bool] | None:
    """The schema of one file and whether it has rows (None when it has no columns either)."""
    return _INFER[ref.format](storage, ref, config)


def open_reader(
    storage: Storage,
    ref: FileRef,
    schema: pa.Schema,
    config: FilesConfig,
    *,
    batch_size: int,
    columns: frozenset[str] | None = None,
) -> FileReader:
    return _READERS[ref.format](storage, ref, schema, config, batch_size=batch_size, columns=columns)
