"""The REST source against a real HTTP server: each pagination style, batches, streaming."""

from __future__ import annotations

from typing import Any

import pytest
from rest_server import TOTAL, Api

from openfuse_connectors.builtin.rest import RestConfig, RestExtractor
from openfuse_connectors.spec import StreamSpec

STYLES: dict[str, dict[str, Any]] = {
    "page_number": {
        "path": "/pages/page_number",
        "record_selector": "$.data[*]",
        "paginator": {"type": "page_number", "page_size_param": "per_page", "page_size": 5},
    },
    "page_number_total_pages": {
        "path": "/pages/page_number",
        "record_selector": "data",
        "params": {"per_page": 5},
        "paginator": {"type": "page_number", "total_pages_path": "$.meta.total_pages"},
    },
    "offset": {
        "path": "/pages/offset",
        "record_selector": "results",
        "paginator": {"type": "offset", "limit": 5, "total_path": "$.total", "stop_on_short_page": False},
    },
    "cursor": {
        "path": "/pages/cursor",
        "record_selector": "$.items",
        "paginator": {"type": "cursor", "cursor_path": "$.meta.next_cursor", "cursor_param": "cursor"},
    },
    "link_header": {"path": "/pages/link", "paginator": {"type": "link_header"}},
    "next_url": {
        "path": "/pages/next_url",
        "record_selector": "$['records'][*]",
        "paginator": {"type": "next_url", "next_url_path": "$.links.next"},
    },
}
# 23 records in pages of 5: every style stops after the fifth page (short, last, or no next link)
# without asking for an empty sixth one.
PAGES = 5


def extractor(api: Api, **resource: Any) -> RestExtractor:
    return RestExtractor(
        RestConfig.model_validate({"base_url": api.base_url, "resources": [{"name": "r", **resource}]})
    )


def read(ex: RestExtractor, batch_size: int = 100_000) -> list[dict[str, Any]]:
    return [row for b in ex.read(StreamSpec(name="r"), None, batch_size=batch_size) for row in b.to_pylist()]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_pagination_style_reads_every_record_once_in_order(api: Api, style: str) -> None:
    resource = STYLES[style]
    rows = read(extractor(api, **resource))
    assert rows == [{"id": i, "name": f"n{i}"} for i in range(1, TOTAL + 1)]
    assert api.state.hits[resource["path"]] == PAGES + 1  # + the schema sample (page 1)


def test_batches_hold_at_most_batch_size_rows_across_pages(api: Api) -> None:
    ex = extractor(api, **STYLES["cursor"])
    sizes = [b.num_rows for b in ex.read(StreamSpec(name="r"), None, batch_size=7)]
    assert sizes == [7, 7, 7, 2]


def test_read_streams_pages_instead_of_fetching_them_all_first(api: Api) -> None:
    ex = extractor(api, **STYLES["cursor"])
    ex.stream_info(StreamSpec(name="r"))
    before = api.state.hits["/pages/cursor"]
    batches = ex.read(StreamSpec(name="r"), None, batch_size=5)
    first = next(batches)
    assert first.num_rows == 5
    assert api.state.hits["/pages/cursor"] - before == 1  # one page fetched for the first batch
    assert sum(b.num_rows for b in batches) == TOTAL - 5


def test_pages_send_the_resource_params_and_the_paginator_params(api: Api) -> None:
    read(extractor(api, **{**STYLES["offset"], "params": {"sort": "id", "active": True}}))
    queries = api.state.queries["/pages/offset"]
    assert [q["offset"] for q in queries[1:]] == ["0", "5", "10", "15", "20"]
    assert all(q["sort"] == "id" and q["active"] == "true" and q["limit"] == "5" for q in queries)


def test_a_record_selector_that_matches_nothing_fails_instead_of_reading_nothing(api: Api) -> None:
    from openfuse_connectors.builtin.rest.errors import RestResponseError

    ex = extractor(api, **{**STYLES["cursor"], "record_selector": "$.data.items[*]"})
    with pytest.raises(
        RestResponseError, match=r"record_selector '\$\.data\.items\[\*\]' matches nothing"
    ) as ei:
        read(ex)
    assert "/pages/cursor" in str(ei.value) and "next_cursor" in str(ei.value)  # URL and body start
