"""The files destination's transaction contract, against real directories in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from openfuse_connectors.builtin.files import FilesConfig, FilesLoader
from openfuse_connectors.builtin.files.loader import dedupe
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.loader import Disposition, QuarantinedRow, WriteJob
from openfuse_connectors.spec import SchemaDrift, StreamSpec
from openfuse_connectors.state import Cursor, StreamState

SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string())])
STATE = StreamState(cursor=Cursor(field="id", type="int64", value="9"))


def loader(path: Path, **options: Any) -> FilesLoader:
    return FilesLoader(FilesConfig(path=str(path), **options))


def job(
    disposition: Disposition,
    *,
    run_id: str,
    stream: str = "orders",
    table: str = "orders",
    key: tuple[str, ...] = (),
    cursor: str | None = None,
) -> WriteJob:
    spec = StreamSpec(name=stream, destination_table=table if table != stream else None)
    return WriteJob(
        pipeline="p",
        stream=spec,
        table=table,
        disposition=disposition,
        drift=SchemaDrift.EVOLVE,
        run_id=run_id,
        primary_key=key,
        cursor_field=cursor,
    )


def batch(ids: list[int], v: list[str | None] | None = None) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": ids, "v": v or [f"v{i}" for i in ids]}, schema=SCHEMA)


def load(ld: FilesLoader, j: WriteJob, *batches: pa.RecordBatch, state: StreamState = STATE) -> None:
    with ld.open(j) as tx:
        tx.prepare(SCHEMA)
        for b in batches:
            tx.write(b)
        tx.commit(state)


def ids(ld: FilesLoader, table: str = "orders") -> list[int]:
    return sorted(ld.read_table(table).column("id").to_pylist())


def test_commit_puts_parts_schema_and_state_in_place(tmp_path: Path) -> None:
    ld = loader(tmp_path)

    load(ld, job(Disposition.APPEND, run_id="r1"), batch([1, 2]), batch([3]))

    assert [p.name for p in (tmp_path / "orders").iterdir() if p.name.startswith("part-")] == [
        "part-r1-00000.parquet"
    ]
    assert (tmp_path / "orders" / "_schema.arrow").exists()
    assert ids(ld) == [1, 2, 3] and ld.count_rows("orders") == 3
    assert ld.table_schema("orders") == SCHEMA
    assert ld.read_state("p", "orders") == STATE
    doc = json.loads((tmp_path / "_openfuse_state" / "p" / "orders.json").read_text())
    assert doc["run_id"] == "r1" and doc["stream"] == "orders"
    leftovers = [p for p in tmp_path.rglob("*") if "_staging-" in p.name or ".tmp-" in p.name]
    assert leftovers == []


def test_state_key_is_encoded_into_one_file_name(tmp_path: Path) -> None:
    ld = loader(tmp_path)

    load(ld, job(Disposition.APPEND, run_id="r1", stream="logs/*.csv", table="logs"), batch([1]))

    assert (tmp_path / "_openfuse_state" / "p" / "logs%2F%2A.csv-%3Elogs.json").exists()
    assert ld.read_state("p", "logs/*.csv->logs") == STATE
    assert ld.read_state("p", "other") is None


def test_exception_before_commit_leaves_the_destination_unchanged(tmp_path: Path) -> None:
    ld = loader(tmp_path)
    load(ld, job(Disposition.APPEND, run_id="r1"), batch([1]))

    with pytest.raises(RuntimeError), ld.open(job(Disposition.OVERWRITE, run_id="r2")) as tx:
        tx.prepare(SCHEMA)
        tx.write(batch([7, 8]))
        raise RuntimeError("source failed mid-stream")

    assert ids(ld) == [1]
    assert not list((tmp_path / "orders").glob("_staging-*"))
    assert ld.read_state("p", "orders") == STATE


def test_abandoned_staging_is_cleared_by_the_next_load(tmp_path: Path) -> None:
    ld = loader(tmp_path)
    tx = ld.open(job(Disposition.APPEND, run_id="dead"))
    tx.prepare(SCHEMA)
    tx.write(batch([5]))  # the process "dies" here: no commit, no rollback

    load(ld, job(Disposition.APPEND, run_id="r2"), batch([1]))

    assert ids(ld) == [1]
    assert not (tmp_path / "orders" / "_staging-dead").exists()


def test_a_commit_interrupted_after_its_journal_is_completed_by_the_next_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ld = loader(tmp_path)
    load(ld, job(Disposition.APPEND, run_id="r1"), batch([1]))

    # A process crash cannot run inside a test: fail the journal's application instead.
    def crash(path: str, journal: dict[str, Any]) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(ld, "_apply", crash)
    new_state = StreamState(cursor=Cursor(field="id", type="int64", value="20"))
    with pytest.raises(KeyboardInterrupt), ld.open(job(Disposition.OVERWRITE, run_id="r2")) as tx:
        tx.prepare(SCHEMA)
        tx.write(batch([10, 20]))
        tx.commit(new_state)
    assert list((tmp_path / "orders").glob("_commit-*.json"))

    fresh = loader(tmp_path)
    assert fresh.read_state("p", "orders") == new_state
    assert ids(fresh) == [10, 20]
    assert not list((tmp_path / "orders").glob("_commit-*.json"))


def test_quarantined_rows_are_written_with_the_load(tmp_path: Path) -> None:
    ld = loader(tmp_path)
    rows = [
        QuarantinedRow(4, "amount", "abc", "value does not fit", {"id": 4, "amount": "abc"}),
        QuarantinedRow(7, None, "2,b,EXTRA", "malformed CSV line (file=a.csv line=3)", {"_line": 3}),
    ]

    with ld.open(job(Disposition.APPEND, run_id="r1")) as tx:
        tx.prepare(SCHEMA)
        tx.write(batch([1]))
        tx.quarantine(rows)
        tx.commit(STATE)

    lines = (tmp_path / "_openfuse_quarantine" / "orders" / "r1.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    assert [(d["position"], d["field"], d["value"]) for d in docs] == [
        (4, "amount", "abc"),
        (7, None, "2,b,EXTRA"),
    ]
    assert docs[1]["record"] == {"_line": 3} and docs[0]["pipeline"] == "p" and docs[0]["run_id"] == "r1"


def test_quarantine_of_a_rolled_back_load_is_discarded(tmp_path: Path) -> None:
    ld = loader(tmp_path)

    with pytest.raises(RuntimeError), ld.open(job(Disposition.APPEND, run_id="r1")) as tx:
        tx.prepare(SCHEMA)
        tx.quarantine([QuarantinedRow(0, "v", "x", "bad", {})])
        raise RuntimeError("boom")

    assert not (tmp_path / "_openfuse_quarantine").exists()


def test_parts_roll_over_at_max_rows_per_file(tmp_path: Path) -> None:
    ld = loader(tmp_path, max_rows_per_file=2, format="csv")

    load(ld, job(Disposition.APPEND, run_id="r1"), batch([1, 2, 3]), batch([4, 5]))

    names = sorted(p.name for p in (tmp_path / "orders").glob("part-*"))
    assert names == ["part-r1-00000.csv", "part-r1-00001.csv", "part-r1-00002.csv"]
    assert ids(ld) == [1, 2, 3, 4, 5]


def test_appending_twice_with_the_same_run_id_never_overwrites_a_part(tmp_path: Path) -> None:
    ld = loader(tmp_path)

    load(ld, job(Disposition.APPEND, run_id="same"), batch([1]))
    load(ld, job(Disposition.APPEND, run_id="same"), batch([2]))

    assert ids(ld) == [1, 2]


def test_merge_keeps_the_row_with_the_greatest_cursor_per_key(tmp_path: Path) -> None:
    ld = loader(tmp_path, format="jsonl")
    j1 = job(Disposition.MERGE, run_id="r1", key=("id",), cursor="v")
    load(ld, j1, batch([1, 2, 3], ["b", "b", "b"]))

    # id 1: newer cursor wins; id 2: older cursor loses; id 3: tie -> the new row; id 4: new key.
    j2 = job(Disposition.MERGE, run_id="r2", key=("id",), cursor="v")
    load(ld, j2, batch([1, 2, 4], ["c", "a", "x"]), batch([3], ["b"]))

    got = sorted((r["id"], r["v"]) for r in ld.read_table("orders").to_pylist())
    assert got == [(1, "c"), (2, "b"), (3, "b"), (4, "x")]
    assert len(list((tmp_path / "orders").glob("part-*"))) == 1  # the table was rewritten


def test_dedupe_prefers_the_latest_row_on_ties_and_any_value_over_null() -> None:
    t = pa.table({"k": [1, 1, 2, 2, 3], "c": [5, 5, None, 1, None], "n": ["a", "b", "c", "d", "e"]})

    out = dedupe(t, ("k",), "c")

    assert out.to_pylist() == [
        {"k": 1, "c": 5, "n": "b"},
        {"k": 2, "c": 1, "n": "d"},
        {"k": 3, "c": None, "n": "e"},
    ]


def test_csv_destination_refuses_nested_columns_naming_them(tmp_path: Path) -> None:
    ld = loader(tmp_path, format="csv")
    schema = pa.schema([("id", pa.int64()), ("tags", pa.list_(pa.string()))])

    with pytest.raises(ConfigError) as e, ld.open(job(Disposition.APPEND, run_id="r1")) as tx:
        tx.prepare(schema)

    assert "'tags'" in str(e.value)
    assert (e.value.field, e.value.value) == ("destination.config.format", "csv")


def test_missing_table(tmp_path: Path) -> None:
    ld = loader(tmp_path)

    assert ld.table_schema("nope") is None
    with pytest.raises(ConfigError) as e:
        ld.read_table("nope")
    assert "'nope'" in str(e.value)


def test_destination_path_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")

    with pytest.raises(ConfigError) as e:
        loader(f).check()

    assert (e.value.field, e.value.value) == ("destination.config.path", str(f))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_nested_values_round_trip(tmp_path: Path, fmt: str) -> None:
    import datetime as dt

    ld = loader(tmp_path, format=fmt)
    struct = pa.struct([("at", pa.timestamp("us", tz="UTC")), ("n", pa.int64())])
    table = pa.table(
        {
            "s": pa.array([{"at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "n": 1}, None], struct),
            "l": [[1.5, None], []],
        }
    )

    with ld.open(job(Disposition.APPEND, run_id="r1")) as tx:
        tx.prepare(table.schema)
        tx.write(table.to_batches()[0])
        tx.commit(STATE)

    assert ld.read_table("orders").equals(table)
