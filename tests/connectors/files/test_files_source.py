"""The files source against real files in tmp_path (and fsspec's in-memory filesystem)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openfuse_connectors.builtin.files import MODIFIED_AT, FilesConfig, FilesExtractor
from openfuse_connectors.builtin.files.errors import FileReadError
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.registry import get_registry
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import Cursor, StreamState

T0 = 1_700_000_000  # a fixed file time (seconds) so runs are deterministic


def write(path: Path, text: str, *, mtime: int = T0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))
    return path


def extractor(path: Path | str, **options: Any) -> FilesExtractor:
    return FilesExtractor(FilesConfig(path=str(path), **options))


def read_all(
    ex: FilesExtractor, stream: StreamSpec | str, state: StreamState | None = None, **kw: int
) -> pa.Table:
    spec = StreamSpec(name=stream) if isinstance(stream, str) else stream
    batches = list(ex.read(spec, state, **kw))
    schema = batches[0].schema if batches else ex.stream_info(spec).schema
    return pa.Table.from_batches(batches, schema=schema)


def mtime_cursor(seconds: int) -> StreamState:
    value = dt.datetime.fromtimestamp(seconds, dt.UTC)
    scalar = pa.scalar(value, pa.timestamp("us", tz="UTC"))
    return StreamState(cursor=Cursor.from_scalar(MODIFIED_AT, scalar))


# -- discovery and naming


def test_discover_names_top_level_files_by_stem_and_data_directories(tmp_path: Path) -> None:
    write(tmp_path / "orders.csv", "id,name\n1,a\n")
    write(tmp_path / "events.jsonl", '{"id": 1, "kind": "click"}\n')
    pq.write_table(pa.table({"v": [1.5]}), tmp_path / "metrics.parquet")
    write(tmp_path / "logs" / "a.csv", "x\n1\n")
    write(tmp_path / "dup.csv", "x\n1\n")
    write(tmp_path / "dup.jsonl", '{"x": 1}\n')
    write(tmp_path / "_hidden.csv", "x\n1\n")
    write(tmp_path / "notes.txt", "not data\n")
    (tmp_path / "empty").mkdir()

    infos = {i.name: i for i in extractor(tmp_path).discover()}

    assert sorted(infos) == ["dup.csv", "dup.jsonl", "events", "logs", "metrics", "orders"]
    orders = infos["orders"]
    assert orders.schema.field("id").type == pa.int64()
    assert orders.schema.field("name").type == pa.string()
    assert orders.schema.field(MODIFIED_AT).type == pa.timestamp("us", tz="UTC")
    assert orders.cursor_candidates[0] == MODIFIED_AT
    assert infos["metrics"].schema.field("v").type == pa.float64()
    assert infos["events"].schema.names == ["id", "kind", MODIFIED_AT]


def test_every_discovered_name_reads_back_its_own_files(tmp_path: Path) -> None:
    write(tmp_path / "dup.csv", "x\n1\n")
    write(tmp_path / "dup.jsonl", '{"x": 2}\n{"x": 3}\n')
    write(tmp_path / "orders" / "part-1.csv", "x\n4\n")
    write(tmp_path / "orders.csv", "x\n5\n")  # its stem is taken by the directory
    ex = extractor(tmp_path)

    got = {i.name: sorted(read_all(ex, i.name).column("x").to_pylist()) for i in ex.discover()}

    assert got == {"dup.csv": [1], "dup.jsonl": [2, 3], "orders": [4], "orders.csv": [5]}


def test_glob_streams_match_relative_to_path_and_skip_hidden_entries(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "2024-01.csv", "n\n1\n2\n")
    write(tmp_path / "logs" / "2024-02.csv", "n\n3\n")
    write(tmp_path / "logs" / "2023-12.csv", "n\n0\n")
    write(tmp_path / "logs" / "_in_progress.csv", "n\n99\n")
    write(tmp_path / "logs" / "_staging-x" / "2024-03.csv", "n\n98\n")
    write(tmp_path / "logs" / "deep" / "2024-04.csv", "n\n4\n")
    ex = extractor(tmp_path)

    assert sorted(read_all(ex, "logs/2024-*.csv").column("n").to_pylist()) == [1, 2, 3]
    assert sorted(read_all(ex, "logs/**/*.csv").column("n").to_pylist()) == [0, 1, 2, 3, 4]
    assert sorted(read_all(ex, "logs").column("n").to_pylist()) == [0, 1, 2, 3]  # a directory: not recursive


# -- full reads of each format


def test_reads_csv_with_inferred_types(tmp_path: Path) -> None:
    write(
        tmp_path / "orders.csv",
        'id,name,amount,paid,day\n1,a,1.5,true,2024-01-02\n2,,,false,\n3,"",,false,\n',
    )

    tab = read_all(extractor(tmp_path), "orders")

    assert tab.schema.field("amount").type == pa.float64()
    assert tab.schema.field("paid").type == pa.bool_()
    assert tab.schema.field("day").type == pa.date32()
    rows = tab.drop_columns([MODIFIED_AT]).to_pylist()
    assert rows == [
        {"id": 1, "name": "a", "amount": 1.5, "paid": True, "day": dt.date(2024, 1, 2)},
        # An unquoted empty cell is NULL, a quoted one the empty string (as PostgreSQL's CSV format).
        {"id": 2, "name": None, "amount": None, "paid": False, "day": None},
        {"id": 3, "name": "", "amount": None, "paid": False, "day": None},
    ]
    assert tab.column(MODIFIED_AT).to_pylist() == [dt.datetime.fromtimestamp(T0, dt.UTC)] * 3


def test_reads_csv_options_delimiter_and_no_header(tmp_path: Path) -> None:
    write(tmp_path / "pairs.tsv", "1;x\n2;y\n")

    tab = read_all(extractor(tmp_path, delimiter=";", header=False), "pairs")

    assert tab.drop_columns([MODIFIED_AT]).to_pylist() == [{"f0": 1, "f1": "x"}, {"f0": 2, "f1": "y"}]


def test_reads_jsonl_including_nested_values(tmp_path: Path) -> None:
    write(
        tmp_path / "events.jsonl", '{"id": 1, "tags": ["a", "b"], "at": "2024-01-01T00:00:00"}\n\n{"id": 2}\n'
    )

    tab = read_all(extractor(tmp_path), "events")

    assert tab.schema.field("tags").type == pa.list_(pa.string())
    assert tab.column("id").to_pylist() == [1, 2]
    assert tab.column("tags").to_pylist() == [["a", "b"], None]


def test_reads_parquet_and_gzip_csv(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"k": pa.array([1, 2, 3], pa.int32()), "s": ["a", "b", None]}), tmp_path / "t.parquet"
    )
    (tmp_path / "g.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    ex = extractor(tmp_path)

    t = read_all(ex, "t")
    g = read_all(ex, "g")

    assert t.schema.field("k").type == pa.int32()
    assert t.drop_columns([MODIFIED_AT]).to_pylist() == [
        {"k": 1, "s": "a"},
        {"k": 2, "s": "b"},
        {"k": 3, "s": None},
    ]
    assert g.drop_columns([MODIFIED_AT]).to_pylist() == [{"a": 1, "b": 2}]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_batches_never_exceed_batch_size(tmp_path: Path, fmt: str) -> None:
    n = 2_500
    if fmt == "csv":
        write(tmp_path / "big.csv", "i,s\n" + "".join(f"{i},row{i}\n" for i in range(n)))
    elif fmt == "jsonl":
        write(tmp_path / "big.jsonl", "".join(json.dumps({"i": i, "s": f"row{i}"}) + "\n" for i in range(n)))
    else:
        pq.write_table(
            pa.table({"i": list(range(n)), "s": [f"row{i}" for i in range(n)]}), tmp_path / "big.parquet"
        )

    batches = list(extractor(tmp_path).read(StreamSpec(name="big"), None, batch_size=300))

    assert max(b.num_rows for b in batches) <= 300
    assert [v for b in batches for v in b.column("i").to_pylist()] == list(range(n))


def test_file_column_and_selected_columns(tmp_path: Path) -> None:
    write(tmp_path / "o" / "a.csv", "id,name,secret\n1,a,s\n")
    ex = extractor(tmp_path, file_column="_file")

    tab = read_all(ex, StreamSpec(name="o", columns=("name", "_file")))
    inc = read_all(
        ex, StreamSpec(name="o", columns=("name",), mode="incremental_append", cursor_field=MODIFIED_AT)
    )

    assert tab.schema.names == ["name", "_file"]
    assert tab.column("_file").to_pylist() == [str(tmp_path / "o" / "a.csv")]
    assert inc.schema.names == ["name", MODIFIED_AT]  # the cursor field is always kept


def test_later_files_are_read_with_the_first_files_schema(tmp_path: Path) -> None:
    write(tmp_path / "o" / "a.csv", "id,amount\n1,10\n")
    write(tmp_path / "o" / "b.csv", "amount,id,extra\n20,2,x\n", mtime=T0 + 1)

    first, second = list(extractor(tmp_path).read(StreamSpec(name="o"), None))

    assert first.schema.names == ["id", "amount", MODIFIED_AT]
    assert second.schema.field("amount").type == pa.int64()
    assert (first.column("amount").to_pylist(), second.column("amount").to_pylist()) == ([10], [20])
    # A column the stream schema does not have is passed on (the engine quarantines the row).
    assert second.schema.names == ["id", "amount", MODIFIED_AT, "extra"]
    assert second.column("extra").to_pylist() == ["x"]


def test_empty_and_header_only_files_are_read_and_do_not_decide_the_schema(tmp_path: Path) -> None:
    write(tmp_path / "o" / "0_empty.csv", "")
    write(tmp_path / "o" / "1_header.csv", "id,amount\n")
    write(tmp_path / "o" / "2_data.csv", "\n\nid,amount\n1,2.5\n")
    write(tmp_path / "o" / "3_empty.jsonl", "\n")

    tab = read_all(extractor(tmp_path), "o")

    assert tab.schema.field("id").type == pa.int64() and tab.schema.field("amount").type == pa.float64()
    assert tab.drop_columns([MODIFIED_AT]).to_pylist() == [{"id": 1, "amount": 2.5}]


def test_memory_filesystem_url(tmp_path: Path) -> None:
    root = f"memory://openfuse-files-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    try:
        with fsspec.open(f"{root}/in/orders.jsonl", "w") as f:
            f.write('{"id": 7}\n')
        tab = read_all(extractor(f"{root}/in"), "orders")
        assert tab.column("id").to_pylist() == [7]
    finally:
        fs.rm(root.removeprefix("memory://"), recursive=True)


# -- incremental by modification time


def test_read_with_state_skips_files_older_than_the_cursor(tmp_path: Path) -> None:
    write(tmp_path / "o" / "old.csv", "id\n1\n", mtime=T0)
    write(tmp_path / "o" / "same.csv", "id\n2\n", mtime=T0 + 60)
    write(tmp_path / "o" / "new.csv", "id\n3\n", mtime=T0 + 120)
    ex = extractor(tmp_path)
    stream = StreamSpec(name="o", mode="incremental_append", cursor_field=MODIFIED_AT)

    tab = read_all(ex, stream, mtime_cursor(T0 + 60))

    # Inclusive: the file at exactly the cursor time is read again (the engine drops known rows).
    assert tab.column("id").to_pylist() == [2, 3]
    assert read_all(ex, stream).column("id").to_pylist() == [1, 2, 3]


def test_read_with_state_on_a_data_column_filters_rows(tmp_path: Path) -> None:
    write(tmp_path / "o.csv", "id,seq\n1,10\n2,20\n3,30\n")
    state = StreamState(cursor=Cursor(field="seq", type="int64", value="20"))

    tab = read_all(
        extractor(tmp_path), StreamSpec(name="o", mode="incremental_append", cursor_field="seq"), state
    )

    assert tab.column("id").to_pylist() == [2, 3]


# -- bad input: quarantined, never fatal, never silently dropped


def test_malformed_csv_line_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "o.csv", "id,name\n1,a\n2,b,EXTRA\n\n3,c\n")
    ex = extractor(tmp_path)

    tab = read_all(ex, "o")
    rejects = ex.take_rejects()

    assert tab.column("id").to_pylist() == [1, 3]
    assert len(rejects) == 1
    r = rejects[0]
    assert r.record == {"_file": str(path), "_line": 3, "_text": "2,b,EXTRA"}
    assert r.value == "2,b,EXTRA"
    assert "expected 2 fields, found 3" in r.reason and f"file={path}" in r.reason and "line=3" in r.reason
    assert ex.take_rejects() == []  # each reject is handed over once


def test_line_numbers_count_empty_lines_around_malformed_ones(tmp_path: Path) -> None:
    write(tmp_path / "o" / "a.csv", "id,amount\n1,10\n", mtime=T0)
    text = "\n\nid,amount\n3,30\n2,b,EXTRA\n\n4,abc\n\n\n5,1,1\n6,x\n"
    path = write(tmp_path / "o" / "b.csv", text, mtime=T0 + 1)
    ex = extractor(tmp_path)
    from openfuse_connectors.conform import conform

    target = ex.stream_info(StreamSpec(name="o")).schema
    quarantined, offset = [], 0
    for b in ex.read(StreamSpec(name="o"), None, batch_size=1):
        _, bad = conform(b, target, offset=offset)
        quarantined += ex.annotate_quarantine(bad)
        offset += b.num_rows
    rejects = ex.take_rejects()

    lines = text.splitlines()
    assert [(r.value, r.record["_line"]) for r in rejects] == [("2,b,EXTRA", 5), ("5,1,1", 10)]
    assert [(q.value, q.record["_line"]) for q in quarantined] == [("abc", 7), ("x", 11)]
    assert all(lines[q.record["_line"] - 1].endswith(q.value) for q in quarantined)
    assert {q.record["_file"] for q in quarantined + rejects} == {str(path)}


def test_unparsable_value_stays_text_and_is_located_by_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "o" / "a.csv", "id,amount\n1,10\n2,20\n", mtime=T0)
    bad = write(tmp_path / "o" / "b.csv", "id,amount\n3,30\n\n4,abc\n5,NULL\n", mtime=T0 + 1)
    ex = extractor(tmp_path)

    batches = list(ex.read(StreamSpec(name="o"), None))

    assert ex.stream_info(StreamSpec(name="o")).schema.field("amount").type == pa.int64()
    second = batches[1]
    # The value that does not parse is kept as text for conform() to quarantine; NULL stays NULL.
    assert second.column("amount").to_pylist() == ["30", "abc", None]
    from openfuse_connectors.conform import conform

    target = ex.stream_info(StreamSpec(name="o")).schema
    good, quarantined = conform(second, target, offset=2)
    assert good.column("id").to_pylist() == [3, 5]
    [row] = ex.annotate_quarantine(quarantined)
    assert (row.position, row.field, row.value) == (3, "amount", "abc")
    assert row.record["_file"] == str(bad) and row.record["_line"] == 4
    assert f"file={bad} line=4" in row.reason


def test_invalid_json_lines_are_rejected_and_the_rest_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", '{"id": 1}\n{"id": 2,\n[1, 2]\n{"id": 3}\n')
    ex = extractor(tmp_path)

    tab = read_all(ex, "e")
    rejects = ex.take_rejects()

    assert tab.column("id").to_pylist() == [1, 3]
    assert [(r.record["_line"], r.value) for r in rejects] == [(2, '{"id": 2,'), (3, "[1, 2]")]
    assert rejects[0].reason.startswith("invalid JSON") and f"file={path}" in rejects[0].reason
    assert rejects[1].reason.startswith("not a JSON object")


def test_json_value_of_the_wrong_type_is_kept_for_quarantine(tmp_path: Path) -> None:
    write(tmp_path / "e.jsonl", '{"id": 1}\n{"id": "two"}\n{"id": 3}\n')
    ex = extractor(tmp_path)

    batches = list(ex.read(StreamSpec(name="e"), None))
    from openfuse_connectors.conform import conform

    target = ex.stream_info(StreamSpec(name="e")).schema
    quarantined = []
    offset = 0
    for b in batches:
        _, bad = conform(b, target, offset=offset)
        quarantined += ex.annotate_quarantine(bad)
        offset += b.num_rows
    assert [(q.field, q.value, q.record["_line"]) for q in quarantined] == [("id", "two", 2)]
    assert sum(b.num_rows for b in batches) == 3


def test_rejects_of_a_boundary_file_loaded_before_are_not_reported_again(tmp_path: Path) -> None:
    write(tmp_path / "o" / "a.csv", "id\n1\n1,2\n", mtime=T0)
    ex = extractor(tmp_path)
    stream = StreamSpec(name="o", mode="incremental_append", cursor_field=MODIFIED_AT)
    first = list(ex.read(stream, None))
    assert len(ex.take_rejects()) == 1
    from openfuse_connectors.state import key_digests

    state = mtime_cursor(T0).model_copy(
        update={"boundary_keys": tuple(key_digests(first[0], first[0].schema.names))}
    )

    list(ex.read(stream, state))

    assert ex.take_rejects() == []


def test_text_in_the_wrong_encoding_fails_the_stream_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "o" / "a.csv", "id,name\n1,cafe\n", mtime=T0)
    bad = tmp_path / "o" / "b.csv"
    bad.write_bytes(b"id,name\n2,caf\xe9\n")
    os.utime(bad, ns=((T0 + 1) * 10**9, (T0 + 1) * 10**9))

    with pytest.raises(FileReadError) as e:
        read_all(extractor(tmp_path), "o")
    assert e.value.file == str(bad) and "encoding" in str(e.value)

    latin1 = read_all(extractor(tmp_path, encoding="latin1"), "o")
    assert latin1.column("name").to_pylist() == ["cafe", "café"]


# -- configuration errors name the field and the value


def test_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        get_registry().extractor("files", {"path": "/data", "format": "xml"})
    assert e.value.field == "source.config.format"
    assert e.value.value == "xml"


def test_missing_path_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    ex = get_registry().extractor("files", {"path": str(missing)})

    with pytest.raises(ConfigError) as e:
        ex.check()

    assert e.value.field == "source.config.path"
    assert e.value.value == str(missing)
    assert str(missing) in str(e.value)


def test_file_without_a_known_extension_needs_format(tmp_path: Path) -> None:
    write(tmp_path / "data.txt", "a\n1\n")

    with pytest.raises(ConfigError) as e:
        extractor(tmp_path).stream_info(StreamSpec(name="data.txt"))

    assert (e.value.field, e.value.value) == ("source.config.format", "data.txt")
    assert read_all(extractor(tmp_path, format="csv"), "data.txt").column("a").to_pylist() == [1]


def test_stream_matching_no_file_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "x\n1\n")

    with pytest.raises(ConfigError) as e:
        extractor(tmp_path).stream_info(StreamSpec(name="orders/*.csv"))

    assert (e.value.field, e.value.value) == ("streams[orders/*.csv].name", "orders/*.csv")


def test_bad_delimiter_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        get_registry().extractor("files", {"path": "/data", "delimiter": ";;"})
    assert (e.value.field, e.value.value) == ("source.config.delimiter", ";;")
