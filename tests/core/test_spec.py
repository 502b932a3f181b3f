"""The pipeline file contract: validation errors name the file, the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfuse_connectors import PipelineSpecError, SyncMode, load_pipeline, parse_pipeline

BASE = {
    "name": "p",
    "source": {"connector": "postgres", "config": {"dsn": "postgresql://x"}},
    "destination": {"connector": "duckdb", "config": {"path": "w.duckdb"}},
    "streams": [{"name": "public.orders"}],
}


def with_stream(**kw: object) -> dict:
    return {**BASE, "streams": [{"name": "public.orders", **kw}]}


def test_minimal_pipeline_defaults() -> None:
    p = parse_pipeline(BASE)
    s = p.streams[0]
    assert s.mode is SyncMode.FULL_REFRESH_OVERWRITE
    assert s.table == "orders" and s.state_key == "public.orders"


@pytest.mark.parametrize(
    ("stream", "field", "message"),
    [
        ({"mode": "sideways"}, "streams[0:public.orders].mode", "Input should be"),
        ({"mode": "incremental_append"}, "streams[0:public.orders]", "needs cursor_field"),
        (
            {"mode": "incremental_dedupe", "cursor_field": "u"},
            "streams[0:public.orders]",
            "needs primary_key",
        ),
        ({"bogus": 1}, "streams[0:public.orders].bogus", "Extra inputs"),
        ({"destination_table": "a;b"}, "streams[0:public.orders].destination_table", "plain identifier"),
    ],
)
def test_invalid_streams_name_the_field(stream: dict, field: str, message: str) -> None:
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline(with_stream(**stream), source="p.yaml")
    assert ei.value.field == field
    assert message in str(ei.value) and "p.yaml" in str(ei.value)


def test_two_streams_into_one_table_is_refused() -> None:
    data = {**BASE, "streams": [{"name": "a.orders"}, {"name": "b.orders"}]}
    with pytest.raises(PipelineSpecError, match="both load into table 'orders'"):
        parse_pipeline(data)


def test_env_vars_are_expanded_and_missing_ones_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OF_TEST_PW", "hunter2")
    data = {
        **BASE,
        "source": {"connector": "postgres", "config": {"dsn": "postgresql://u:${OF_TEST_PW}@h/db"}},
    }
    assert parse_pipeline(data).source.config["dsn"] == "postgresql://u:hunter2@h/db"
    data["source"]["config"]["dsn"] = "postgresql://u:${OF_TEST_NOT_SET}@h/db"
    with pytest.raises(PipelineSpecError, match="OF_TEST_NOT_SET is not set") as ei:
        parse_pipeline(data, source="p.yaml")
    assert ei.value.field == "source.config.dsn"
    assert str(ei.value).count("source.config.dsn") == 1 and str(ei.value).endswith(" in p.yaml")
    data["source"]["config"]["dsn"] = "${OF_TEST_NOT_SET:-fallback}"
    assert parse_pipeline(data).source.config["dsn"] == "fallback"


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nstreams: [\n  - a: b\n")
    with pytest.raises(PipelineSpecError, match=r"invalid YAML at line \d+, column \d+") as ei:
        load_pipeline(f)
    assert str(f) in str(ei.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineSpecError, match="cannot read pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")
