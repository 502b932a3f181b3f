"""Type fidelity of the files connector: inference that keeps every digit, and values a text
format cannot hold quarantined by the destination (issue #3), through the real engine."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openfuse_connectors.builtin.files import FilesConfig, FilesExtractor, FilesLoader
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.spec import StreamSpec, parse_pipeline

DEC = "9999999999999999999999999999.9999999999"


def run(src: Path, dst: Path, stream: str, **destination: Any) -> StreamResult:
    spec = parse_pipeline(
        {
            "name": "exact",
            "source": {"connector": "files", "config": {"path": str(src)}},
            "destination": {"connector": "files", "config": {"path": str(dst), **destination}},
            "streams": [{"name": stream}],
        }
    )
    [result] = run_pipeline(spec)
    assert result.error is None, result.error
    return result


def read(path: Path, stream: str) -> pa.Table:
    ex = FilesExtractor(FilesConfig(path=str(path)))
    spec = StreamSpec(name=stream)
    schema = ex.stream_info(spec).schema
    return pa.Table.from_batches(list(ex.read(spec, None)), schema=schema)


def quarantined(dst: Path, table: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted((dst / "_openfuse_quarantine" / table).glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_csv_numbers_float64_cannot_hold_are_inferred_as_decimals(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text(
        f"id,d,big,f\n1,{DEC},18446744073709551615,0.1\n2,0.0000000001,-1,nan\n3,1.5000000000,2,-inf\n"
    )

    tab = read(tmp_path, "n")

    assert tab.schema.field("d").type == pa.decimal128(38, 10)
    assert tab.schema.field("big").type == pa.decimal128(20, 0)
    assert tab.schema.field("f").type == pa.float64()
    assert tab.column("d").to_pylist() == [Decimal(DEC), Decimal("1E-10"), Decimal("1.5")]
    assert tab.column("big").to_pylist() == [18446744073709551615, -1, 2]
    f = tab.column("f").to_pylist()
    assert f[0] == 0.1 and math.isnan(f[1]) and f[2] == -math.inf  # "nan" is a float, not NULL


def test_csv_value_float64_cannot_hold_after_the_sample_is_quarantined(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "o").mkdir(parents=True)
    (src / "o" / "a.csv").write_text("id,v\n1,0.5\n2,1e-10\n")  # the schema: v float64
    (src / "o" / "b.csv").write_text(f"id,v\n3,1.50\n4,{DEC}\n")

    result = run(src, dst, "o")

    assert (result.rows_written, result.rows_quarantined) == (3, 1)
    got = FilesLoader(FilesConfig(path=str(dst))).read_table("o")
    assert dict(zip(got.column("id").to_pylist(), got.column("v").to_pylist(), strict=True)) == {
        1: 0.5,
        2: 1e-10,
        3: 1.5,
    }
    [q] = quarantined(dst, "o")
    assert (q["field"], q["value"], q["record"]["id"]) == ("v", DEC, 4)


def test_jsonl_numbers_and_objects_are_inferred_exactly(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "big": 18446744073709551615, "d": DEC, "same": {"a": 1}, "differ": {"a": [1, 2]}},
        {
            "id": 2,
            "big": 1,
            "d": "0.0000000001",
            "same": {"a": None},
            "differ": {"other": 1.000000000000000000001},
        },
        {"id": 3, "differ": {}},
    ]
    # Decimals as JSON numbers with every digit (json.dumps would quote the strings).
    text = "\n".join(
        json.dumps(r).replace(f'"{DEC}"', DEC).replace('"0.0000000001"', "0.0000000001") for r in lines
    )
    text = text.replace("1.0", "1.000000000000000000001")  # json.dumps rounds the float
    (tmp_path / "e.jsonl").write_text(text + "\n")

    tab = read(tmp_path, "e")

    assert tab.schema.field("big").type == pa.decimal128(20, 0)
    assert tab.schema.field("d").type == pa.decimal128(38, 10)
    assert tab.schema.field("same").type == pa.struct([("a", pa.int64())])  # the same keys: a struct
    assert tab.schema.field("differ").type == pa.string()  # keys differ: JSON text, not a struct
    assert tab.column("big").to_pylist() == [18446744073709551615, 1, None]
    assert tab.column("d").to_pylist() == [Decimal(DEC), Decimal("1E-10"), None]
    differ = [json.loads(v, parse_float=Decimal) for v in tab.column("differ").to_pylist()]
    assert differ == [{"a": [1, 2]}, {"other": Decimal("1.000000000000000000001")}, {}]


@pytest.mark.parametrize(("fmt", "kept"), [("csv", 2), ("jsonl", 2), ("parquet", 3)])
def test_timestamps_beyond_year_9999_are_quarantined_by_text_formats(
    tmp_path: Path, fmt: str, kept: int
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    ts = pa.array([0, 253402300799999999, 2**63 - 1], pa.int64()).cast(
        pa.timestamp("us")
    )  # 1970, 9999, beyond
    pq.write_table(pa.table({"id": [1, 2, 3], "at": ts}), src / "t.parquet")

    result = run(src, dst, "t", format=fmt)

    assert (result.rows_written, result.rows_quarantined) == (kept, 3 - kept)
    got = FilesLoader(FilesConfig(path=str(dst), format=fmt)).read_table("t")
    assert got.column("at").cast(pa.int64()).to_pylist() == ts.cast(pa.int64()).to_pylist()[:kept]
    if fmt != "parquet":
        [q] = quarantined(dst, "t")
        assert (q["field"], q["position"], q["record"]["id"]) == ("at", 2, 3)
        assert (
            q["value"].startswith("9223372036854775807 us") and "does not fit destination type" in q["reason"]
        )


def test_decimal256_round_trips_through_csv_and_json_text_through_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    wide = Decimal("123456789012345678901234567890.123456789012345678901234567890")
    doc = '{"n": 1.000000000000000000001, "big": -98765432109876543210}'
    pq.write_table(
        pa.table(
            {
                "id": [1, 2],
                "w": pa.array([wide, None], pa.decimal256(60, 30)),
                "j": pa.array([doc, None], pa.json_()),
            }
        ),
        src / "x.parquet",
    )
    for fmt in ("csv", "jsonl"):
        dst = tmp_path / fmt
        spec_cols = ["id", "w"] if fmt == "csv" else ["id", "w", "j"]  # CSV refuses the extension type
        spec = parse_pipeline(
            {
                "name": "exact",
                "source": {"connector": "files", "config": {"path": str(src)}},
                "destination": {"connector": "files", "config": {"path": str(dst), "format": fmt}},
                "streams": [{"name": "x", "columns": spec_cols}],
            }
        )
        [r] = run_pipeline(spec)
        assert r.error is None, r.error
        got = FilesLoader(FilesConfig(path=str(dst), format=fmt)).read_table("x")
        assert got.column("w").to_pylist() == [wide, None]
        if fmt == "jsonl":
            assert got.schema.field("j").type == pa.json_()
            assert got.column("j").to_pylist() == [doc, None]


def test_jsonl_number_float64_cannot_hold_after_the_sample_is_quarantined(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "o").mkdir(parents=True)
    (src / "o" / "a.jsonl").write_text('{"id": 1, "v": 0.5}\n')  # the schema: v float64
    (src / "o" / "b.jsonl").write_text('{"id": 2, "v": 0.25}\n{"id": 3, "v": 0.1000000000000000000001}\n')

    result = run(src, dst, "o")

    assert (result.rows_written, result.rows_quarantined) == (2, 1)
    got = FilesLoader(FilesConfig(path=str(dst))).read_table("o")
    assert sorted(zip(got.column("id").to_pylist(), got.column("v").to_pylist(), strict=True)) == [
        (1, 0.5),
        (2, 0.25),
    ]
    [q] = quarantined(dst, "o")
    assert (q["field"], q["value"], q["record"]["id"]) == ("v", "0.1000000000000000000001", 3)
