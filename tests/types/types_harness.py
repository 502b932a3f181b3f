"""Build each source's edge table, load it into a destination, read it back, and judge every value.

Shared by ``test_type_matrix.py`` and ``render_matrix.py``. For one (source, destination) pair
:func:`run_pair` loads the edge table through ``run_pipeline`` twice: a ``full_refresh_overwrite``
(PostgreSQL -> PostgreSQL takes the binary COPY pass-through there), then a
``full_refresh_append`` into the table the first load made, which plans the schema against the
destination's own (what every later incremental run does). It reads the table back with
``Loader.read_table`` and checks every row: each value once per load, equal after :func:`canon`,
or in ``_openfuse_quarantine`` with ``field`` naming its column (rows are sparse, so a row's id
names its column).

A column the destination refuses must not hide the others, so:

* a failing load whose error names columns is run again without them (they are *refused*);
* a failure naming none (an append, or ``read_table`` failing) splits the columns in two groups,
  each loaded into a table of its own, recursively, down to the failing column;
* columns whose values out of the source are not valid Arrow values (found once per source) are
  loaded alone from the start: the same outcome as splitting down to them, in fewer loads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from types_cases import DESTINATIONS, DIALECTS, NULL_ROW, Column, Dialect, Infinity, Interval, Json, Reject

from openfuse_connectors.catalog import native_type
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import StreamSpec, parse_pipeline

PG_ADMIN = os.environ.get("OPENFUSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_MY = urlsplit(os.environ.get("OPENFUSE_TEST_MYSQL", "mysql://root@127.0.0.1:3306"))
MYSQL_SERVER: dict[str, Any] = {
    "host": _MY.hostname or "127.0.0.1",
    "port": _MY.port or 3306,
    "user": unquote(_MY.username or "root"),
    "password": unquote(_MY.password or ""),
}

# -- servers -------------------------------------------------------------------------------------


def pg_url(db: str) -> str:
    return PG_ADMIN.rpartition("/")[0] + "/" + db


def pg_create_db(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def pg_drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mysql_connect(database: str = "", sql_mode: str | None = None) -> Any:
    import MySQLdb

    conn = MySQLdb.connect(
        **MYSQL_SERVER,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
        init_command="SET time_zone = '+00:00'",
    )
    if sql_mode is not None:
        conn.cursor().execute("SET SESSION sql_mode = %s", (sql_mode,))
    return conn


def mysql_create_db(name: str) -> None:
    conn = mysql_connect()
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        conn.close()


def mysql_drop_db(name: str) -> None:
    conn = mysql_connect()
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


# -- building the sources --------------------------------------------------------------------------


@dataclass
class Source:
    """A built source: the connector config and the stream that reads (some of) its edge table."""

    dialect: Dialect
    config: dict[str, Any]
    #: Columns whose Arrow values out of the source are not valid values of their type.
    invalid: set[str] | None = None

    def stream(self, columns: list[str], mode: str, table: str) -> dict[str, Any]:
        name = f"edge.{self.dialect.name}" if self.dialect.layout == "file" else "edge"
        return {"name": name, "columns": ["id", *columns], "destination_table": table, "mode": mode}


def _value(v: Any) -> Any:
    return v.literal if isinstance(v, Reject | Infinity) else v


def build_postgres(d: Dialect, url: str) -> Source:
    import psycopg

    cols = ", ".join(f"{c.name} {c.native}" for c in d.columns)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE edge (id integer PRIMARY KEY, {cols})")
        conn.execute(f"INSERT INTO edge (id) VALUES ({NULL_ROW})")
        with conn.cursor() as cur:
            for i, c, v in d.rows():
                if c is None:
                    continue
                v = _value(v)
                if isinstance(v, Interval):
                    v = f"{v.months} mons {v.days} days {v.micros} microseconds"
                elif isinstance(v, Json):
                    v = v.text
                cur.execute(f"INSERT INTO edge (id, {c.name}) VALUES (%s, %s::{c.native})", (i, v))
    return Source(d, {"dsn": url})


def build_mysql(d: Dialect, database: str) -> Source:
    cols = ", ".join(f"`{c.name}` {c.native} NULL" for c in d.columns)
    conn = mysql_connect(database, sql_mode="")  # "" lets the zero date in, as old data has it
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE edge (id int PRIMARY KEY, {cols}) CHARACTER SET utf8mb4")
        cur.execute("INSERT INTO edge (id) VALUES (%s)", (NULL_ROW,))
        for i, c, v in d.rows():
            if c is None:
                continue
            v = _value(v)
            if isinstance(v, bool):
                v = int(v)
            elif isinstance(v, dt.datetime):
                v = v.replace(tzinfo=None)  # a UTC session: TIMESTAMP literals are UTC wall time
            elif isinstance(v, uuid.UUID):
                v = str(v)
            elif isinstance(v, Json):
                v = v.text
            cur.execute(f"INSERT INTO edge (id, `{c.name}`) VALUES (%s, %s)", (i, v))
    finally:
        conn.close()
    return Source(d, {**MYSQL_SERVER, "database": database})


def build_duckdb(d: Dialect, path: Path) -> Source:
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        cols = ", ".join(f"{c.name} {c.native}" for c in d.columns)
        con.execute(f"CREATE TABLE edge (id INTEGER PRIMARY KEY, {cols})")
        con.execute("INSERT INTO edge (id) VALUES (?)", [NULL_ROW])
        for i, c, v in d.rows():
            if c is None:
                continue
            v = _value(v)
            if isinstance(v, Interval):
                v = f"{v.months} months {v.days} days {v.micros} microseconds"
            elif isinstance(v, Json):
                v = v.text
            elif isinstance(v, float):
                v = repr(v)
            elif isinstance(v, int | Decimal | uuid.UUID | dt.date | dt.time) and not isinstance(v, bool):
                v = str(v)
            con.execute(f"INSERT INTO edge (id, {c.name}) VALUES (?, ?::{c.native})", [i, v])
    finally:
        con.close()
    return Source(d, {"path": str(path)})


def _as_text(v: Any) -> Any:
    """A canonical value as the text (or number) another system writes for it."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time | uuid.UUID):
        return str(v) if isinstance(v, uuid.UUID) else v.isoformat()
    if isinstance(v, Json):
        return v.text
    return v


def build_sqlite(d: Dialect, path: Path) -> Source:
    con = sqlite3.connect(str(path))
    try:
        cols = ", ".join(f"{c.name} {c.native}" for c in d.columns)
        con.execute(f"CREATE TABLE edge (id INTEGER PRIMARY KEY, {cols})")
        con.execute("INSERT INTO edge (id) VALUES (?)", (NULL_ROW,))
        for i, c, v in d.rows():
            if c is not None:
                con.execute(f"INSERT INTO edge (id, {c.name}) VALUES (?, ?)", (i, _as_text(v)))
        con.commit()
    finally:
        con.close()
    return Source(d, {"path": str(path)})


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""  # unquoted empty: NULL
    if isinstance(v, str | Json):
        text = v.text if isinstance(v, Json) else v
        return '"' + text.replace('"', '""') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.isoformat()
    return str(_as_text(v))


def _json_value(v: Any) -> str:
    if isinstance(v, Decimal):
        return format(v, "f")  # a JSON number with every digit
    if isinstance(v, Json):
        return v.text
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return json.dumps(v.isoformat())
    if isinstance(v, dt.date | dt.time | dt.datetime | uuid.UUID):
        return json.dumps(str(_as_text(v)))
    return json.dumps(v, ensure_ascii=False)


def _arrow_type(c: Column) -> pa.DataType:
    special = {
        "extension<arrow.uuid>": pa.uuid(),
        "extension<arrow.json>": pa.json_(),
        "decimal128(38, 10)": pa.decimal128(38, 10),
        "decimal256(60, 30)": pa.decimal256(60, 30),
        "date32[day]": pa.date32(),
        "time64[us]": pa.time64("us"),
        "timestamp[us]": pa.timestamp("us"),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
        "list<int64>": pa.list_(pa.int64()),
        "list<string>": pa.list_(pa.string()),
        "struct<a: int64, b: string>": pa.struct([("a", pa.int64()), ("b", pa.string())]),
    }
    return special.get(c.native) or pa.type_for_alias(c.native)


def build_files(d: Dialect, root: Path) -> Source:
    """One file ``edge.<format>`` holding the sparse edge table (absent cells are NULL)."""
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    # The source infers types from the first MiB: the 1 MiB value goes last, so that the sample
    # sees every column (a JSON Lines field first seen after it would not be in the schema).
    rows = sorted(d.rows(), key=lambda r: isinstance(r[2], str | bytes) and len(r[2]) > 1 << 16)
    path = root / f"edge.{d.name}"
    names = [c.name for c in d.columns]
    if d.name == "csv":
        lines = ["id," + ",".join(names)]
        for i, col, v in rows:
            lines.append(f"{i}," + ",".join(_csv_cell(v) if c is col else "" for c in d.columns))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    elif d.name == "jsonl":
        lines = [
            f'{{"id": {i}}}' if col is None else f'{{"id": {i}, "{col.name}": {_json_value(v)}}}'
            for i, col, v in rows
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    else:
        arrays = {"id": pa.array([i for i, _, _ in rows], pa.int64())}
        for c in d.columns:
            t = _arrow_type(c)
            values = [v if col is c else None for _, col, v in rows]
            if isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid":
                arrays[c.name] = pa.array([None if v is None else v.bytes for v in values], t)
            elif isinstance(t, pa.BaseExtensionType):
                arrays[c.name] = pa.array([None if v is None else v.text for v in values], t)
            else:
                arrays[c.name] = pa.array(values, t)
        pq.write_table(pa.table(arrays), path)
    return Source(d, {"path": str(root)})


# -- destinations ---------------------------------------------------------------------------------


def dest_config(dest: str, workdir: Path, pg_dest_url: str | None, source: str) -> dict[str, Any]:
    connector, extra = DESTINATIONS[dest]
    if connector == "postgres":
        assert pg_dest_url is not None
        return {"dsn": pg_dest_url, "schema": f"from_{source}", **extra}
    if connector == "duckdb":
        return {"path": str(workdir / "dest.duckdb"), **extra}
    if connector == "sqlite":
        return {"path": str(workdir / "dest.sqlite"), **extra}
    return {"path": str(workdir / f"dest_{dest}"), **extra}


def read_quarantine(reg: Registry, dest: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every quarantined row of the destination: {run_id, field, value, reason, record (a dict)}."""
    connector, _ = DESTINATIONS[dest]
    out: list[dict[str, Any]] = []
    if connector == "files":
        base = Path(config["path"]) / "_openfuse_quarantine"
        for f in sorted(base.glob("*/*.jsonl")) if base.exists() else []:
            for line in f.read_text(encoding="utf-8").splitlines():
                doc = json.loads(line)
                out.append({**doc, "table": f.parent.name})
        return out
    loader = reg.loader(connector, config)
    try:
        if loader.table_schema("_openfuse_quarantine") is None:
            return []
        rows = loader.read_table("_openfuse_quarantine").to_pylist()
    finally:
        loader.close()
    for r in rows:
        rec = r.get("record")
        with contextlib.suppress(ValueError):
            rec = json.loads(rec) if isinstance(rec, str) else rec
        out.append({**r, "record": rec, "table": None})
    return out


# -- canonical values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A value Python cannot represent as its type (an out-of-range timestamp), kept as its integer."""

    type: str
    value: int


class NotCanonical(ValueError):
    """The value is not a representation of anything of this kind."""


_TS_INF = {2**63 - 1: Infinity(1), -(2**63 - 1): Infinity(-1)}
_DATE_INF = {2**31 - 1: Infinity(1), -(2**31 - 1): Infinity(-1)}


def pyvalues(arr: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of an Arrow column; out-of-range temporal values become :class:`Raw`."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    try:
        return arr.to_pylist()
    except (OverflowError, ValueError):
        pass
    out = []
    t = arr.type
    for i in range(len(arr)):
        try:
            out.append(arr[i].as_py())
        except (OverflowError, ValueError):
            width = pa.int32() if pa.types.is_date32(t) else pa.int64()
            n = arr.slice(i, 1).view(width)[0].as_py() if not pa.types.is_nested(t) else -1
            inf = (_DATE_INF if pa.types.is_date32(t) else _TS_INF).get(n)
            out.append(inf if inf is not None else Raw(str(t), n))
    return out


def _parse_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=int)


def _inf_text(v: Any) -> Infinity | None:
    if isinstance(v, str) and v.strip().lower() in ("infinity", "+infinity", "-infinity"):
        return Infinity(-1 if v.strip().startswith("-") else 1)
    return None


def canon(kind: str, v: Any) -> Any:
    """A destination's value in the canonical form of ``kind``.

    Only the representation changes here (``"42"`` for 42, a uuid's 16 bytes for the uuid, an
    integral Decimal for an int); a different value stays different, so a lossy store shows.
    """
    if v is None or isinstance(v, Raw | Infinity):
        return v
    if kind in ("date", "ts", "tstz") and (inf := _inf_text(v)) is not None:
        return inf
    if kind == "int":
        if isinstance(v, bool):
            raise NotCanonical(v)
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, Decimal) and v == v.to_integral_value():
            return int(v)
        if isinstance(v, str):
            return int(v)
    elif kind == "decimal":
        if isinstance(v, Decimal):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return Decimal(v)  # a float's exact binary value: 1e28 is not 9999...9.9999999999
        if isinstance(v, str):
            try:
                return Decimal(v)
            except InvalidOperation:
                raise NotCanonical(v) from None
    elif kind == "float":
        if isinstance(v, float):
            return v
        if isinstance(v, int | Decimal) and not isinstance(v, bool):
            return float(v) if Decimal(float(v)) == Decimal(v) else Decimal(v)
        if isinstance(v, str):
            return float(v)
    elif kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.lower() in ("true", "t", "1", "false", "f", "0"):
            return v.lower() in ("true", "t", "1")
    elif kind == "text":
        if isinstance(v, str):
            return v
    elif kind == "bytes":
        if isinstance(v, bytes):
            return v
    elif kind == "date":
        if isinstance(v, dt.datetime):
            if v.tzinfo is None and v.time() == dt.time(0):
                return v.date()
            raise NotCanonical(v)
        if isinstance(v, dt.date):
            return v
        if isinstance(v, str):
            return dt.date.fromisoformat(v)
    elif kind == "time":
        if isinstance(v, dt.time):
            return v
        if isinstance(v, str):
            return dt.time.fromisoformat(v)
    elif kind in ("ts", "tstz"):
        if isinstance(v, str):
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        elif isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            v = dt.datetime(v.year, v.month, v.day)
        if isinstance(v, dt.datetime):
            if (v.tzinfo is None) != (kind == "ts"):
                raise NotCanonical(f"{v!r} ({'naive' if v.tzinfo is None else 'with a time zone'})")
            return v if v.tzinfo is None else v.astimezone(dt.UTC)
    elif kind == "interval":
        if isinstance(v, pa.MonthDayNano):
            months, days, ns = v.months, v.days, v.nanoseconds
            if ns % 1000 == 0:
                return Interval(months, days, ns // 1000)
        if isinstance(v, tuple) and len(v) == 3:
            return Interval(v[0], v[1], v[2] // 1000)
        if isinstance(v, dt.timedelta):
            return Interval(0, 0, v // dt.timedelta(microseconds=1))
    elif kind == "uuid":
        if isinstance(v, uuid.UUID):
            return v
        if isinstance(v, bytes) and len(v) == 16:
            return uuid.UUID(bytes=v)
        if isinstance(v, str):
            return uuid.UUID(v)
    elif kind == "json":
        if isinstance(v, str):
            try:
                return Json(json.dumps(_parse_json(v), sort_keys=True, default=str))
            except ValueError:
                raise NotCanonical(v) from None
        return Json(json.dumps(_jsonish(v), sort_keys=True, default=str))
    elif kind == "list":
        if isinstance(v, str):
            v = _parse_json(v)
        if isinstance(v, list):
            return v
    elif kind == "struct":
        if isinstance(v, str):
            v = _parse_json(v)
        if isinstance(v, dict):
            return v
    raise NotCanonical(f"{type(v).__name__} {v!r}"[:200])


def _jsonish(v: Any) -> Any:
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, dict):
        return {k: _jsonish(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonish(x) for x in v]
    return v


def expected_canon(kind: str, v: Any) -> Any:
    if kind == "json" and isinstance(v, Json):
        return Json(json.dumps(_parse_json(v.text), sort_keys=True, default=str))
    return v


def same(a: Any, b: Any) -> bool:
    """Equality that tells NaN from NULL and -0.0 from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        if a.is_nan() or b.is_nan():
            return a.is_nan() and b.is_nan()
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b if not isinstance(a, int | float) else a == b


def disp(v: Any, n: int = 28) -> str:
    """A value as a short label."""
    if v is None:
        return "NULL"
    if isinstance(v, Infinity):
        return v.literal
    if isinstance(v, Raw):
        return f"out-of-range {v.value}"
    if isinstance(v, Reject):
        return repr(v.literal)
    if isinstance(v, Json):
        v = v.text
    if isinstance(v, Decimal):
        text = format(v, "f") if v.is_finite() else str(v)
    elif isinstance(v, dt.datetime | dt.date | dt.time):
        text = v.isoformat()
    elif isinstance(v, str):
        text = repr(v)
    else:
        text = repr(v)
    text = text.replace("|", "¦").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def short(v: Any, n: int = 90) -> str:
    if isinstance(v, str | bytes) and len(v) > 64:
        head = repr(v[:40])
        return f"{head}... ({len(v)} {'chars' if isinstance(v, str) else 'bytes'})"
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


# -- running a pair and judging it ----------------------------------------------------------------

TABLE = "edge"


@dataclass
class ColumnOutcome:
    """What happened to one source column in one destination."""

    column: Column
    source_arrow: str | None = None
    dest_native: str | None = None
    dest_arrow: str | None = None
    append_arrow: str | None = None  # the type the append load planned (differs when widened)
    exact: int = 0
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (id, reason)
    refused: str | None = None  # the first load fails with this column
    refused_append: str | None = None  # appending to the table the first load made fails
    problems: list[str] = field(default_factory=list)  # silently altered or lost values
    labels: list[str] = field(default_factory=list)  # the same, short: "nan → NULL"
    misread: list[str] = field(default_factory=list)  # stored exactly, but read_table shows otherwise


@dataclass
class PairOutcome:
    source: str
    dest: str
    columns: dict[str, ColumnOutcome]
    problems: list[str] = field(default_factory=list)  # rows not attributable to one column

    def all_problems(self) -> list[str]:
        return [f"{c}: {p}" for c, o in self.columns.items() for p in o.problems] + self.problems


def _native_of(f: pa.Field, connector: str) -> str:
    """The destination's own column type; for files (which keep the source's metadata) the Arrow type."""
    n = native_type(f) or ""
    return n.split(":", 1)[1] if n.startswith(f"{connector}:") else str(f.type)


def _row_id(record: Any) -> int | None:
    if not isinstance(record, dict) or record.get("id") is None:
        return None
    try:
        return int(record["id"])
    except (TypeError, ValueError):
        return None


def _names(error: str, column: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(column)}(?![A-Za-z0-9_])", error) is not None


TextCheck = Callable[[str, int], int]

_FAMILIES = ("decimal", "date", "timestamp", "time", "struct", "list", "interval", "binary", "uuid", "json")
#: Words of destination errors that point at a type family.
_FAMILY_WORDS = {
    "numeric": "decimal",
    "precision": "decimal",
    "copy data": "timestamp",
    "out of range": "timestamp",
    "month_day_nano": "month_day_nano",
    "extension": "extension",
}


class _Unattributed(Exception):
    """A group of columns failed in a way that names none of them (or all): split the group."""

    def __init__(self, stage: str, error: str, hint: list[str]):
        super().__init__(error)
        self.stage, self.error, self.hint = stage, error, hint


class _Runner:
    def __init__(self, reg: Registry, src: Source, dest: str, cfg: dict[str, Any]):
        self.reg, self.src, self.dest, self.cfg = reg, src, dest, cfg
        self.tables = 0
        self.types: dict[str, str] | None = None

    def run(self, columns: list[str], mode: str, table: str) -> tuple[StreamResult, str]:
        d = self.src.dialect
        spec = parse_pipeline(
            {
                "name": f"types_{d.name}_{self.dest}",
                "source": {"connector": d.connector, "config": self.src.config},
                "destination": {"connector": DESTINATIONS[self.dest][0], "config": self.cfg},
                "streams": [self.src.stream(columns, mode, table)],
            }
        )
        run_id = uuid.uuid4().hex
        [r] = run_pipeline(spec, registry=self.reg, run_id=run_id)
        if os.environ.get("TYPES_DEBUG"):
            print(
                f"    run {mode:24} {table:10} {len(columns):2} cols ok={r.ok} {r.seconds:.2f}s "
                f"{columns if len(columns) < 5 else ''} {(r.error or '')[:100]}"
            )
        return r, run_id

    def source_types(self) -> dict[str, str]:
        """Column -> the Arrow type the source reads it as."""
        if self.types is None:
            ex = self.reg.extractor(self.src.dialect.connector, self.src.config)
            try:
                info = ex.stream_info(
                    StreamSpec(name=self.src.stream([], "full_refresh_overwrite", "x")["name"])
                )
            finally:
                ex.close()
            self.types = {f.name: str(f.type) for f in info.schema}
        return self.types

    def invalid_columns(self) -> set[str]:
        """Columns the source hands over with values outside their Arrow type (a timestamp no
        calendar holds, 39 digits in a decimal128(38, 0)), found once per source.

        The run loads each of them in a table of its own from the start: the outcome is the
        same as splitting a failing group down to it, in far fewer loads.
        """
        if self.src.invalid is None:
            found: set[str] = set()
            ex = self.reg.extractor(self.src.dialect.connector, self.src.config)
            try:
                name = self.src.stream([], "full_refresh_overwrite", "x")["name"]
                for batch in ex.read(StreamSpec(name=name), None):
                    for f, col in zip(batch.schema, batch.columns, strict=True):
                        if f.name not in found and not _valid(col):
                            found.add(f.name)
            finally:
                ex.close()
            self.src.invalid = found
        return self.src.invalid

    def outcome(self, column: str) -> ColumnOutcome:
        return ColumnOutcome(self.src.dialect.column(column), source_arrow=self.source_types().get(column))

    def suspects(self, error: str, columns: list[str]) -> list[str]:
        """Columns whose Arrow type an error message mentions: where to split a group first.

        Only a speed-up (the split still finds the column when the guess is wrong).
        """
        types = self.source_types()
        low = error.lower()
        families = {w for w in _FAMILIES if w in low}
        for word, family in _FAMILY_WORDS.items():
            if word in low:
                families.add(family)
        out = []
        for c in columns:
            t = types.get(c)
            if t is not None and (
                f"'{t}'" in error or f" {t}" in error or any(t.startswith(f) for f in families)
            ):
                out.append(c)
        return out

    def load(self, columns: list[str], mode: str, table: str) -> tuple[StreamResult, str, dict[str, str]]:
        """Load ``columns``; columns a failure names are left out (returned with the error).

        Raises :class:`_Unattributed` when a failure names none of the remaining columns.
        """
        pending = list(columns)
        refused: dict[str, str] = {}
        while True:
            r, run_id = self.run(pending, mode, table)
            if r.ok:
                return r, run_id, refused
            error = r.error or "?"
            named = [c for c in pending if _names(error, c)]
            if not named or len(named) == len(pending):
                raise _Unattributed(mode, error, self.suspects(error, pending))
            refused.update(dict.fromkeys(named, error))
            pending = [c for c in pending if c not in named]

    def attempt(self, columns: list[str], loads: int) -> tuple[dict[str, ColumnOutcome], list[str]]:
        """Load ``columns`` into a new table (overwrite, then append), read it back and judge it."""
        self.tables += 1
        table = TABLE if self.tables == 1 else f"{TABLE}_{self.tables}"
        d = self.src.dialect
        out = {c: self.outcome(c) for c in columns}
        first, run1, refused = self.load(columns, "full_refresh_overwrite", table)
        for c, e in refused.items():
            out[c].refused = e
        loaded = [c for c in columns if c not in refused]
        runs = {run1}
        copies = dict.fromkeys(loaded, 1)
        assert first.schema is not None
        for c in loaded:
            out[c].source_arrow = str(first.schema.field(c).type)
        rows_per_id = 1
        if loads > 1:
            second, run2, refused2 = self.load(loaded, "full_refresh_append", table)
            for c, e in refused2.items():
                out[c].refused_append = e
            runs.add(run2)
            rows_per_id = 2
            assert second.schema is not None
            for c in loaded:
                if c not in refused2:
                    out[c].append_arrow = str(second.schema.field(c).type)
                    copies[c] = 2
        loader = self.reg.loader(DESTINATIONS[self.dest][0], self.cfg)
        schema = None
        try:
            schema = loader.table_schema(table)
            tab = loader.read_table(table)
        except Exception as e:
            error = f"reading the table back: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
            hint = [c for c in loaded if _names(str(e), c)]
            m = re.search(r"CSV column #(\d+)", str(e))
            if m and schema is not None and int(m.group(1)) < len(schema.names):
                hint.append(schema.names[int(m.group(1))])
            hint = [c for c in loaded if c in hint] or self.suspects(str(e), loaded)
            raise _Unattributed("read_table", error, hint) from e
        finally:
            loader.close()
        assert schema is not None
        for c in loaded:
            if c not in schema.names:
                out[c].problems.append("column missing from the destination table")
                continue
            out[c].dest_native = _native_of(schema.field(c), DESTINATIONS[self.dest][0])
            out[c].dest_arrow = str(schema.field(c).type)
        quarantine = [q for q in read_quarantine(self.reg, self.dest, self.cfg) if q.get("run_id") in runs]
        problems: list[str] = []
        check = self.text_check(table)
        _judge(d, tab, quarantine, out, problems, copies, rows_per_id, set(columns), check)
        return out, problems

    def text_check(self, table: str) -> TextCheck | None:
        """PostgreSQL -> PostgreSQL: how many stored copies of a value read_table shows differently are exact.

        ``read_table`` reads through ADBC, which returns types it does not know (timetz) as raw
        bytes and turns ±infinity into out-of-range numbers; comparing the text PostgreSQL
        renders in both databases tells a misread from a stored change.
        """
        if self.src.dialect.name != "postgres" or self.dest != "postgres":
            return None
        import psycopg

        src_dsn, dst_dsn, schema = self.src.config["dsn"], self.cfg["dsn"], self.cfg["schema"]

        def check(column: str, i: int) -> int:
            with psycopg.connect(src_dsn) as conn:
                row = conn.execute(f'SELECT "{column}"::text FROM edge WHERE id = %s', (i,)).fetchone()
            with psycopg.connect(dst_dsn) as conn:
                got = conn.execute(
                    f'SELECT "{column}"::text FROM "{schema}"."{table}" WHERE id = %s', (i,)
                ).fetchall()
            return 0 if row is None else sum(g[0] == row[0] for g in got)

        return check


def run_pair(reg: Registry, src: Source, dest: str, cfg: dict[str, Any], *, loads: int = 2) -> PairOutcome:
    """Load the source's edge table into ``dest`` (overwrite, then append) and judge every value.

    A failure that names no column (an append, or reading the table back) is narrowed down by
    loading the columns again in two groups (the named ones first, else halves), recursively,
    each group in a table of its own; a single failing column gets the failure.
    """
    d = src.dialect
    runner = _Runner(reg, src, dest, cfg)
    outcome = PairOutcome(d.name, dest, {c.name: runner.outcome(c.name) for c in d.columns})

    def settle(columns: list[str]) -> None:
        try:
            out, problems = runner.attempt(columns, loads)
        except _Unattributed as e:
            if len(columns) == 1:
                o = runner.outcome(columns[0])
                if e.stage == "full_refresh_overwrite":
                    o.refused = e.error
                elif e.stage == "full_refresh_append":
                    o.refused_append = e.error
                else:
                    o.problems.append(f"the loads commit, but {e.error}")
                    o.labels.append("loads, but read_table fails")
                outcome.columns[columns[0]] = o
                return
            first = [c for c in columns if c in e.hint]
            if not first or len(first) == len(columns):
                first = columns[: len(columns) // 2]
            settle(first)
            settle([c for c in columns if c not in first])
            return
        outcome.columns.update(out)
        outcome.problems.extend(problems)

    invalid = runner.invalid_columns()
    settle([c.name for c in d.columns if c.name not in invalid])
    for c in d.columns:
        if c.name in invalid:
            settle([c.name])
    return outcome


def _valid(col: pa.Array) -> bool:
    """Whether every value of ``col`` is a value of its type."""
    try:
        values = col.to_pylist()
    except (OverflowError, ValueError):
        return False
    if pa.types.is_decimal(col.type):
        p = col.type.precision
        return all(v is None or len(v.as_tuple().digits) <= p for v in values)
    return True


def _judge(
    d: Dialect,
    tab: pa.Table,
    quarantine: list[dict[str, Any]],
    columns: dict[str, ColumnOutcome],
    problems: list[str],
    copies: dict[str, int],
    rows_per_id: int,
    judged: set[str],
    check: TextCheck | None = None,
) -> None:
    """Check every row of ``tab``, holding the ``judged`` columns of the edge table."""
    owner = {
        i: (c, v) if c is not None and c.name in judged else (None, None) for i, (c, v) in d.owner().items()
    }
    values = {name: pyvalues(tab.column(name)) for name in tab.column_names if name in judged}
    rows: dict[int, list[int]] = {}
    for n, i in enumerate(pyvalues(tab.column("id"))):
        if i is None or int(i) not in owner:
            problems.append(f"unexpected row id={i!r}")
            continue
        rows.setdefault(int(i), []).append(n)
    held: dict[int, list[dict[str, Any]]] = {}
    for q in quarantine:
        i = _row_id(q.get("record"))
        if i is None or i not in owner:
            problems.append(
                f"quarantined row without its id: field={q.get('field')!r} reason={str(q.get('reason'))[:200]!r}"
            )
            continue
        held.setdefault(i, []).append(q)

    for i, (col, want) in owner.items():
        o = columns[col.name] if col is not None else None
        where = rows.get(i, [])
        qs = held.get(i, [])
        for q in qs:
            if o is None or q.get("field") != o.column.name:
                problems.append(
                    f"id={i} quarantined naming field {q.get('field')!r}"
                    f"{'' if o is None else f', not {o.column.name!r}'}: {str(q.get('reason'))[:200]}"
                )
            else:
                o.quarantined.append((i, str(q.get("reason"))))
        if len(where) + len(qs) != rows_per_id:
            what = "lost" if len(where) + len(qs) < rows_per_id else "duplicated"
            (o.problems if o is not None else problems).append(
                f"id={i} {what}: {len(where)} row(s) + {len(qs)} quarantined, expected {rows_per_id} "
                f"(source value {short(want)})"
            )
            if o is not None:
                o.labels.append(f"{disp(want)} {what}")
        for n in where:
            for name, vals in values.items():
                if (o is None or name != o.column.name) and vals[n] is not None:
                    problems.append(f"id={i} has a value in column {name!r}: {short(vals[n])}")
        if o is None or o.column.name not in values:
            continue  # the NULL row, or a column the first load refused
        got = [values[o.column.name][n] for n in where]
        for _ in range(rows_per_id - copies.get(o.column.name, 0)):
            if None in got:  # appended without this column: NULL there
                got.remove(None)
            else:
                o.problems.append(f"id={i}: the append load left this column out, but no row is NULL")
        exact_text: list[int] = []  # copies PostgreSQL stores exactly, counted on the first mismatch
        for v in got:
            _compare(o.column, i, want, v, o, check, exact_text)


def _compare(
    col: Column, i: int, want: Any, v: Any, o: ColumnOutcome, check: TextCheck | None, exact_text: list[int]
) -> None:
    if isinstance(want, Reject):
        why = f"id={i} source value {want.literal!r} has no exact equivalent but loaded as {short(v)}"
    else:
        try:
            c = canon(col.kind, v)
        except (NotCanonical, ValueError) as e:
            c, why = (
                None,
                f"id={i} silently altered: expected {short(want)}, got {short(v)} ({short(str(e))})",
            )
        else:
            if c is not None and same(expected_canon(col.kind, want), c):
                o.exact += 1
                return
            why = f"id={i} silently altered: expected {short(want)}, got {short(v)}"
    if check is not None and not exact_text:
        exact_text.append(check(col.name, i))
    if exact_text and exact_text[0] > 0:
        exact_text[0] -= 1
        o.exact += 1
        o.misread.append(f"{disp(want)} read as {disp(v)}")
        return
    o.problems.append(why)
    o.labels.append(f"{disp(want)} → {disp(v)}")


def build_source(name: str, workdir: Path, *, pg_url_: str | None, mysql_db: str | None) -> Source:
    d = DIALECTS[name]
    if name == "postgres":
        assert pg_url_ is not None
        return build_postgres(d, pg_url_)
    if name == "mysql":
        assert mysql_db is not None
        return build_mysql(d, mysql_db)
    if name == "duckdb":
        return build_duckdb(d, workdir / "source.duckdb")
    if name == "sqlite":
        return build_sqlite(d, workdir / "source.sqlite")
    return build_files(d, workdir / f"source_{name}")
