"""The REST source's pure parts: JSONPath subset, Link header, types, batches, config validation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openfuse_connectors.builtin.rest import RestConfig
from openfuse_connectors.builtin.rest.config import Incremental
from openfuse_connectors.builtin.rest.extractor import format_cursor
from openfuse_connectors.builtin.rest.jsonpath import MISSING, JsonPath
from openfuse_connectors.builtin.rest.paginators import parse_link_header
from openfuse_connectors.builtin.rest.redact import Redactor
from openfuse_connectors.builtin.rest.schema import infer_type, parse_type, to_batches
from openfuse_connectors.state import Cursor

DOC = {
    "data": {"items": [{"id": 1}, {"id": 2}], "odd key.x": 5},
    "meta": {"next": None},
    "list": [[1], [2, 3]],
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("$.data.items[*]", [{"id": 1}, {"id": 2}]),
        ("data.items", [[{"id": 1}, {"id": 2}]]),
        ("$.data.items[0].id", [1]),
        ("$.data.items[-1]", [{"id": 2}]),
        ("$.data.items[*].id", [1, 2]),
        ("$['data']['odd key.x']", [5]),
        ('$["meta"].next', [None]),
        ("$.list[*][*]", [1, 2, 3]),
        ("$.meta.*", [None]),
        ("$", [DOC]),
        ("$.nope.items", []),
        ("$.data.items[9]", []),
    ],
)
def test_jsonpath_subset(path: str, found: list[Any]) -> None:
    assert JsonPath(path).find(DOC) == found


def test_jsonpath_first_tells_missing_from_null() -> None:
    assert JsonPath("$.meta.next").first(DOC) is None
    assert JsonPath("$.meta.cursor").first(DOC) is MISSING


@pytest.mark.parametrize("bad", ["", "$..id", "$.data[?(@.id)]", "$.data[1:2]", "$data", "a b", "$.data["])
def test_jsonpath_refuses_what_it_does_not_support(bad: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        JsonPath(bad)


def test_link_header_parsing_follows_rfc_8288() -> None:
    value = '<https://x/a?page=2>; rel="next"; title="a, b; c", <https://x/a?page=9>; rel="last first", </rel>;REL=prev'
    assert parse_link_header(value) == [
        ("https://x/a?page=2", {"rel": "next", "title": "a, b; c"}),
        ("https://x/a?page=9", {"rel": "last first"}),
        ("/rel", {"rel": "prev"}),
    ]
    assert parse_link_header("") == []


@pytest.mark.parametrize(
    ("name", "typ"),
    [
        ("int64", pa.int64()),
        ("float64", pa.float64()),
        ("double", pa.float64()),
        ("bool", pa.bool_()),
        ("boolean", pa.bool_()),
        ("string", pa.string()),
        ("json", pa.string()),
        ("date32", pa.date32()),
        ("timestamp[ms]", pa.timestamp("ms")),
        ("timestamp[us, tz=UTC]", pa.timestamp("us", tz="UTC")),
        ("decimal128(12, 2)", pa.decimal128(12, 2)),
        ("decimal(38,0)", pa.decimal128(38, 0)),
    ],
)
def test_type_names(name: str, typ: pa.DataType) -> None:
    assert parse_type(name) == typ


def test_unknown_type_names_are_config_errors_naming_the_column() -> None:
    with pytest.raises(ValueError, match=r"column 'amount': unknown Arrow type name 'money'"):
        RestConfig.model_validate(
            {
                "base_url": "https://x",
                "resources": [{"name": "r", "path": "/", "schema": {"amount": "money"}}],
            }
        )


@pytest.mark.parametrize(
    ("values", "typ"),
    [
        ([1, None, 2], pa.int64()),
        ([1, 2.5], pa.float64()),
        ([True, False], pa.bool_()),
        ([1, True], pa.string()),
        ([2**70], pa.string()),
        (["2024-01-01T10:00:00Z", "2024-01-02T10:00:00.5+02:00"], pa.timestamp("us", tz="UTC")),
        (["2024-01-01T10:00:00", None], pa.timestamp("us")),
        (["2024-01-01"], pa.date32()),
        (["2024-13-01"], pa.string()),
        (["2024-01-01", "soon"], pa.string()),
        ([{"a": 1}], pa.string()),
        ([None, None], pa.string()),
    ],
)
def test_type_inference(values: list[Any], typ: pa.DataType) -> None:
    assert infer_type(values) == typ


def test_misfit_records_come_last_with_text_columns_and_the_rest_stays_typed() -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC")), ("price", pa.decimal128(6, 2))]
    )
    records: list[dict[str, Any]] = [
        {"id": 1, "at": "2024-01-01T00:00:00Z", "price": "1.50"},
        {"id": 2.5, "at": "2024-01-01T00:00:00Z", "price": 2},  # 2.5 is not an int64
        {"id": 3.0, "at": "yesterday", "price": "3"},  # 3.0 is; "yesterday" is no timestamp
        {"at": None, "price": None, "new": {"x": [1]}},  # missing id: NULL, not dropped
    ]
    typed, misfits = to_batches(records, schema, keep_extra=True)
    assert typed.schema == schema.append(pa.field("new", pa.string()))
    assert typed.to_pylist() == [
        {"id": 1, "at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "price": Decimal("1.50"), "new": None},
        {"id": None, "at": None, "price": None, "new": '{"x":[1]}'},
    ]
    assert misfits.schema.field("id").type == pa.string() and misfits.schema.field("at").type == pa.string()
    assert misfits.to_pylist() == [
        {"id": "2.5", "at": "2024-01-01T00:00:00Z", "price": Decimal("2.00"), "new": None},
        {"id": "3", "at": "yesterday", "price": Decimal("3.00"), "new": None},
    ]
    [only] = to_batches(records[:1], schema, keep_extra=False)
    assert only.schema == schema


@given(
    st.lists(
        st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(), st.booleans()), max_size=30
    )
)
def test_batches_never_lose_or_invent_records(values: list[Any]) -> None:
    records = [{"id": i, "v": v} for i, v in enumerate(values)]
    schema = pa.schema([("id", pa.int64()), ("v", infer_type(values[:3]))])
    batches = to_batches(records, schema, keep_extra=True)
    assert sorted(r["id"] for b in batches for r in b.to_pylist()) == list(range(len(values)))


@pytest.mark.parametrize(
    ("cursor", "fmt", "sent"),
    [
        (("timestamp[us, tz=UTC]", "2024-01-01 00:00:06.500000Z"), "iso8601", "2024-01-01T00:00:06.500000Z"),
        (("timestamp[us, tz=UTC]", "2024-01-01 00:00:06.500000Z"), "unix", "1704067206"),
        (("timestamp[us]", "2024-01-01 00:00:06"), "iso8601", "2024-01-01T00:00:06"),
        (("date32[day]", "2024-01-02"), "unix", "1704153600"),
        (("int64", "42"), "iso8601", "42"),
        (("timestamp[us, tz=UTC]", "2024-01-01 00:00:06.000000Z"), "raw", "2024-01-01 00:00:06.000000Z"),
    ],
)
def test_the_stored_cursor_is_sent_in_the_configured_format(
    cursor: tuple[str, str], fmt: str, sent: str
) -> None:
    c = Cursor(field="at", type=cursor[0], value=cursor[1])
    assert format_cursor(c, Incremental.model_validate({"param": "since", "format": fmt})) == sent


def test_redactor_masks_key_params_user_info_and_secrets() -> None:
    r = Redactor({"tok-123"}, {"sig_key"})
    shown = r.url("https://bob:pw@api.x/a?sig_key=s1&page=2&api_key=s2&note=tok-123")
    assert shown == "https://***@api.x/a?sig_key=***&page=2&api_key=***&note=***"
    assert r.text("bearer tok-123 failed") == "bearer *** failed"


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ([{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}], "resource names must be unique"),
        ([{"name": "a", "path": "/u/{id}"}], r"placeholder\(s\) \['id'\] are not filled"),
        (
            [{"name": "a", "path": "/u/{id}", "parent": {"resource": "b", "fields": {"id": "id"}}}],
            "parent 'b' is not a resource",
        ),
        (
            [
                {"name": "a", "path": "/{x}", "parent": {"resource": "b", "fields": {"x": "id"}}},
                {"name": "b", "path": "/{y}", "parent": {"resource": "a", "fields": {"y": "id"}}},
            ],
            "parent cycle",
        ),
        ([{"name": "a", "path": "/", "incremental": {"param": "since"}}], "incremental needs cursor_field"),
        (
            [{"name": "a", "path": "/", "paginator": {"type": "cursor", "cursor_path": "$..c"}}],
            "recursive descent",
        ),
        (
            [{"name": "a", "path": "/", "paginator": {"type": "pages"}}],
            "does not match any of the expected tags",
        ),
    ],
)
def test_config_validation_explains_mistakes(resources: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestConfig.model_validate({"base_url": "https://api.example.com", "resources": resources})


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        RestConfig.model_validate({"base_url": "api.example.com", "resources": [{"name": "a", "path": "/"}]})
