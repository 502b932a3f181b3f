"""files -> files through the real engine (`run_pipeline`), for every sync mode."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openfuse_connectors.builtin.files import MODIFIED_AT, FilesConfig, FilesLoader
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.spec import PipelineSpec, parse_pipeline

T0 = 1_700_000_000


def write(path: Path, text: str, *, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))


def pipeline(
    src: Path,
    dst: Path,
    streams: list[dict[str, Any]],
    *,
    source: dict[str, Any] | None = None,
    destination: dict[str, Any] | None = None,
) -> PipelineSpec:
    return parse_pipeline(
        {
            "name": "files_test",
            "source": {"connector": "files", "config": {"path": str(src), **(source or {})}},
            "destination": {"connector": "files", "config": {"path": str(dst), **(destination or {})}},
            "streams": streams,
        }
    )


def run(spec: PipelineSpec) -> StreamResult:
    [result] = run_pipeline(spec)
    assert result.error is None, result.error
    return result


def loader(dst: Path, **options: Any) -> FilesLoader:
    return FilesLoader(FilesConfig(path=str(dst), **options))


def rows(dst: Path, table: str, *columns: str, **options: Any) -> list[tuple[Any, ...]]:
    tab = loader(dst, **options).read_table(table)
    return sorted(tuple(r[c] for c in columns) for r in tab.to_pylist())


def parts(dst: Path, table: str) -> list[str]:
    return sorted(p.name for p in (dst / table).glob("part-*"))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_full_refresh_overwrite_replaces_the_table(tmp_path: Path, fmt: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "orders.csv", "id,name\n1,a\n2,b\n", mtime=T0)
    spec = pipeline(src, dst, [{"name": "orders"}], destination={"format": fmt})

    first = run(spec)
    old_parts = parts(dst, "orders")
    write(src / "orders.csv", "id,name\n3,c\n", mtime=T0 + 1)
    second = run(spec)

    assert (first.rows_written, second.rows_written) == (2, 1)
    assert rows(dst, "orders", "id", "name", format=fmt) == [(3, "c")]
    assert len(parts(dst, "orders")) == 1 and not set(parts(dst, "orders")) & set(old_parts)
    assert all(p.endswith(f".{fmt}") for p in parts(dst, "orders"))
    assert not list((dst / "orders").glob("_staging-*")) and not list((dst / "orders").glob("_commit-*"))
    state = json.loads((dst / "_openfuse_state" / "files_test" / "orders.json").read_text())
    assert state["state"]["cursor"] is None and state["run_id"]


def test_full_refresh_append_adds_every_run(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "orders.csv", "id\n1\n2\n", mtime=T0)
    spec = pipeline(src, dst, [{"name": "orders", "mode": "full_refresh_append"}])

    run(spec)
    run(spec)

    assert rows(dst, "orders", "id") == [(1,), (1,), (2,), (2,)]
    assert len(parts(dst, "orders")) == 2


def test_incremental_append_loads_new_files_once_including_at_the_boundary(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    spec = pipeline(
        src,
        dst,
        [{"name": "orders", "mode": "incremental_append", "cursor_field": MODIFIED_AT}],
        source={"file_column": "_file"},
    )
    write(src / "orders" / "a.csv", "id,v\n1,x\n2,y\n", mtime=T0)

    r1 = run(spec)
    write(src / "orders" / "b.csv", "id,v\n3,z\n", mtime=T0 + 10)
    r2 = run(spec)
    # Same time as the last loaded file, same values as its row: only the file name differs.
    write(src / "orders" / "c.csv", "id,v\n3,z\n", mtime=T0 + 10)
    r3 = run(spec)
    r4 = run(spec)

    assert (r1.rows_read, r1.rows_written) == (2, 2)
    # Files already read whole at the cursor time are listed in the checkpoint and not read again;
    # a new file at that same time (c.csv) is read, and its row is loaded although it equals b.csv's.
    assert (r2.rows_read, r2.rows_written) == (1, 1)
    assert (r3.rows_read, r3.rows_written) == (1, 1)
    assert (r4.rows_read, r4.rows_written) == (0, 0)
    got = rows(dst, "orders", "id", "_file")
    assert got == [
        (1, str(src / "orders" / "a.csv")),
        (2, str(src / "orders" / "a.csv")),
        (3, str(src / "orders" / "b.csv")),
        (3, str(src / "orders" / "c.csv")),
    ]
    assert r4.cursor_after == r2.cursor_after == "2023-11-14 22:13:30.000000Z"


def test_incremental_dedupe_keeps_the_newest_row_per_key(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    spec = pipeline(
        src,
        dst,
        [
            {
                "name": "customers",
                "mode": "incremental_dedupe",
                "cursor_field": MODIFIED_AT,
                "primary_key": ["id"],
            }
        ],
    )
    write(src / "customers" / "day1.csv", "id,name\n1,old\n2,bob\n", mtime=T0)

    run(spec)
    write(src / "customers" / "day2.csv", "id,name\n1,new\n3,cy\n", mtime=T0 + 86_400)
    r2 = run(spec)
    r3 = run(spec)

    assert rows(dst, "customers", "id", "name") == [(1, "new"), (2, "bob"), (3, "cy")]
    assert (r2.rows_read, r2.rows_written) == (2, 2) and (r3.rows_read, r3.rows_written) == (0, 0)
    assert loader(dst).count_rows("customers") == 3


def test_unparsable_value_is_quarantined_and_counted(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "o" / "a.csv", "id,amount\n1,10\n2,20\n", mtime=T0)
    write(src / "o" / "b.csv", "id,amount\n3,30\n\n4,abc\n", mtime=T0 + 1)

    result = run(pipeline(src, dst, [{"name": "o"}]))

    assert (result.rows_read, result.rows_written, result.rows_quarantined) == (4, 3, 1)
    assert result.schema is not None and result.schema.field("amount").type == pa.int64()
    assert rows(dst, "o", "id", "amount") == [(1, 10), (2, 20), (3, 30)]
    [qfile] = (dst / "_openfuse_quarantine" / "o").glob("*.jsonl")
    [q] = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert (q["field"], q["value"], q["position"], q["stream"]) == ("amount", "abc", 3, "o")
    assert q["record"]["id"] == 4 and "int64" in q["reason"]


def test_malformed_csv_line_is_quarantined_by_the_engine(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "o.csv", "id,name\n1,a\n2,b,EXTRA\n3,c\n", mtime=T0)

    result = run(pipeline(src, dst, [{"name": "o"}]))

    assert (result.rows_written, result.rows_quarantined) == (2, 1)


def test_a_new_column_in_a_file_is_quarantined_not_dropped(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "o" / "a.csv", "id\n1\n", mtime=T0)
    write(src / "o" / "b.csv", "id,note\n2,hello\n", mtime=T0 + 1)

    result = run(pipeline(src, dst, [{"name": "o"}]))

    assert (result.rows_written, result.rows_quarantined) == (1, 1)
    [qfile] = (dst / "_openfuse_quarantine" / "o").glob("*.jsonl")
    q = json.loads(qfile.read_text())
    assert (q["field"], q["value"]) == ("note", "hello")


def test_append_with_an_evolved_schema_rewrites_old_parts(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    spec = pipeline(src, dst, [{"name": "o", "mode": "full_refresh_append"}])
    write(src / "o.csv", "id\n1\n", mtime=T0)
    run(spec)
    write(src / "o.csv", "id,note\n2,hi\n", mtime=T0 + 1)

    result = run(spec)

    assert any("note" in c for c in result.schema_changes)
    tab = loader(dst).read_table("o")
    assert tab.schema.names == ["id", MODIFIED_AT, "note"]
    assert sorted(tab.select(["id", "note"]).to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "note": None},
        {"id": 2, "note": "hi"},
    ]
    for part in (dst / "o").glob("part-*.parquet"):  # every part has the table's schema
        assert pq.read_schema(part).names == ["id", MODIFIED_AT, "note"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_types_survive_a_round_trip_through_each_destination_format(tmp_path: Path, fmt: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    table = pa.table(
        {
            "i": pa.array([1, None], pa.int32()),
            "s": ["", None],
            "ts": pa.array(
                [dt.datetime(2024, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")
            ),
            "d": pa.array([dt.date(2024, 1, 2), None]),
            "dec": pa.array([decimal.Decimal("1.20"), None], pa.decimal128(6, 2)),
            "t": pa.array([dt.time(1, 2, 3), None], pa.time64("us")),
            "b": [True, None],
        }
    )
    pq.write_table(table, src / "things.parquet")

    run(pipeline(src, dst, [{"name": "things"}], destination={"format": fmt}))

    back = loader(dst, format=fmt).read_table("things").drop_columns([MODIFIED_AT])
    assert back.schema.equals(table.schema)
    assert back.to_pylist() == table.to_pylist()


def test_memory_filesystem_end_to_end(tmp_path: Path) -> None:
    import uuid

    import fsspec

    root = f"memory://openfuse-files-{uuid.uuid4().hex[:8]}"
    try:
        with fsspec.open(f"{root}/src/orders.jsonl", "w") as f:
            f.write('{"id": 1}\n{"id": 2}\n')
        spec = parse_pipeline(
            {
                "name": "mem",
                "source": {"connector": "files", "config": {"path": f"{root}/src"}},
                "destination": {"connector": "files", "config": {"path": f"{root}/dst"}},
                "streams": [{"name": "orders"}],
            }
        )
        run(spec)
        out = FilesLoader(FilesConfig(path=f"{root}/dst")).read_table("orders")
        assert out.column("id").to_pylist() == [1, 2]
    finally:
        fsspec.filesystem("memory").rm(root.removeprefix("memory://"), recursive=True)


# A run adds up to 3 files, each stamped at the newest time so far or later (ties included: the
# boundary case), with rows that may repeat values across files.
_files = st.lists(st.lists(st.integers(0, 3), min_size=0, max_size=3), min_size=0, max_size=3)
_step = st.tuples(_files, st.lists(st.integers(0, 2), min_size=3, max_size=3))


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=4))
def test_incremental_append_never_loses_or_duplicates_a_row(
    steps: list[tuple[list[list[int]], list[int]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src", Path(tmp) / "dst"
        (src / "s").mkdir(parents=True)
        spec = pipeline(
            src,
            dst,
            [{"name": "s", "mode": "incremental_append", "cursor_field": MODIFIED_AT}],
            source={"file_column": "_file"},
        )
        expected: list[tuple[str, int]] = []  # (file, value) of every source row
        newest = T0
        n = 0
        for files, bumps in steps:
            for values, bump in zip(files, bumps, strict=False):
                newest += bump
                path = src / "s" / f"f{n:03d}.csv"
                write(path, "v\n" + "".join(f"{v}\n" for v in values), mtime=newest)
                expected += [(str(path), v) for v in values]
                n += 1
            if n == 0:
                continue
            result = run(spec)
            assert result.error is None
            # A first file without rows makes `v` text in the table; compare values as text.
            got = [(f, str(v)) for f, v in rows(dst, "s", "_file", "v")]
            assert got == sorted((f, str(v)) for f, v in expected)
