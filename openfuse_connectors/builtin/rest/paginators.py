"""Turning pages: from one request and its response to the next request, or None when done.

Each paginator is pure (no I/O): it sees the request it made, the decoded page and how many
records the page held. The stop rules are in each class's docstring.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from openfuse_connectors.builtin.rest.config import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
)
from openfuse_connectors.builtin.rest.errors import RestResponseError
from openfuse_connectors.builtin.rest.jsonpath import MISSING, JsonPath

if TYPE_CHECKING:
    from openfuse_connectors.builtin.rest.client import Page

__all__ = ["PageRequest", "PageTurner", "make_turner", "parse_link_header"]


@dataclass(frozen=True)
class PageRequest:
    """A URL plus query parameters (a next-page URL carries its own query and no params)."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)

    def with_params(self, **changes: Any) -> PageRequest:
        return PageRequest(self.url, {**self.params, **changes})


class PageTurner(ABC):
    def first(self, request: PageRequest) -> PageRequest:
        return request

    @abstractmethod
    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        """The request for the page after ``page``, or None after the last page."""


class SinglePage(PageTurner):
    """No paginator configured: one request."""

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        return None


class PageNumber(PageTurner):
    """Stops after an empty page, a page shorter than ``page_size`` (when set and
    ``stop_on_short_page``), or the page numbered ``total_pages`` (counting from ``start``)."""

    def __init__(self, cfg: PageNumberPaginator):
        self.cfg = cfg
        self.total = JsonPath(cfg.total_pages_path) if cfg.total_pages_path else None

    def first(self, request: PageRequest) -> PageRequest:
        extra: dict[str, Any] = {self.cfg.param: self.cfg.start}
        if self.cfg.page_size_param and self.cfg.page_size:
            extra[self.cfg.page_size_param] = self.cfg.page_size
        return request.with_params(**extra)

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        c = self.cfg
        number = int(request.params[c.param])
        if records == 0:
            return None
        if c.stop_on_short_page and c.page_size and records < c.page_size:
            return None
        if self.total is not None:
            total = _int_at(self.total, page, "total_pages_path")
            if total is not None and number - c.start + 1 >= total:
                return None
        return request.with_params(**{c.param: number + 1})


class Offset(PageTurner):
    """Stops after an empty page, a page shorter than ``limit`` (when ``stop_on_short_page``), or
    once ``offset + records`` reaches the total at ``total_path``. The next offset is the current
    one plus the records received, so a server capping ``limit`` skips nothing."""

    def __init__(self, cfg: OffsetPaginator):
        self.cfg = cfg
        self.total = JsonPath(cfg.total_path) if cfg.total_path else None

    def first(self, request: PageRequest) -> PageRequest:
        return request.with_params(
            **{self.cfg.offset_param: self.cfg.start, self.cfg.limit_param: self.cfg.limit}
        )

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        c = self.cfg
        offset = int(request.params[c.offset_param])
        if records == 0:
            return None
        if c.stop_on_short_page and records < c.limit:
            return None
        if self.total is not None:
            total = _int_at(self.total, page, "total_path")
            if total is not None and offset + records >= total:
                return None
        return request.with_params(**{c.offset_param: offset + records})


class Cursor(PageTurner):
    """Sends the value at ``cursor_path`` as ``cursor_param``; stops when it is missing, null or
    empty. A cursor equal to the one just sent would loop forever and fails the read instead."""

    def __init__(self, cfg: CursorPaginator):
        self.cfg = cfg
        self.path = JsonPath(cfg.cursor_path)

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        value = self.path.first(page.body)
        if value is MISSING or value is None or value == "" or value is False:
            return None
        text = value if isinstance(value, str) else str(value)
        if request.params.get(self.cfg.cursor_param) == text:
            raise RestResponseError(
                url=page.url,
                reason=f"the cursor paginator did not advance: {self.cfg.cursor_path} returned the cursor "
                "just sent; check cursor_path and cursor_param",
            )
        return request.with_params(**{self.cfg.cursor_param: text})


class LinkHeader(PageTurner):
    """Follows the ``Link`` header's ``rel="next"`` URL (RFC 8288); stops when there is none."""

    def __init__(self, cfg: LinkHeaderPaginator):
        self.rel = cfg.rel.lower()

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        for url, params in parse_link_header(page.links):
            if self.rel in params.get("rel", "").lower().split():
                return _follow(page, url)
        return None


class NextUrl(PageTurner):
    """Follows the URL at ``next_url_path`` (relative URLs resolve against the page's URL);
    stops when it is missing, null or empty."""

    def __init__(self, cfg: NextUrlPaginator):
        self.path = JsonPath(cfg.next_url_path)

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        value = self.path.first(page.body)
        if value is MISSING or value is None or value == "":
            return None
        if not isinstance(value, str):
            raise RestResponseError(url=page.url, reason=f"next_url_path points at {value!r}, not a URL")
        return _follow(page, value)


def make_turner(cfg: Paginator | None) -> PageTurner:
    if cfg is None:
        return SinglePage()
    if isinstance(cfg, PageNumberPaginator):
        return PageNumber(cfg)
    if isinstance(cfg, OffsetPaginator):
        return Offset(cfg)
    if isinstance(cfg, CursorPaginator):
        return Cursor(cfg)
    if isinstance(cfg, LinkHeaderPaginator):
        return LinkHeader(cfg)
    return NextUrl(cfg)


def _follow(page: Page, url: str) -> PageRequest:
    target = urljoin(page.request_url, url)
    if target == page.request_url:
        raise RestResponseError(url=page.url, reason="the next-page link points at the page just read")
    return PageRequest(target)


def _int_at(path: JsonPath, page: Page, what: str) -> int | None:
    value = path.first(page.body)
    if value is MISSING or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RestResponseError(
            url=page.url, reason=f"{what} {path.text!r} points at {value!r}, not a whole number"
        ) from None


_LINK = re.compile(r"<([^>]*)>")
_PARAM = re.compile(r"""\s*;\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?""")


def parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """``<url>; rel="next"; title="x", <url2>; rel=last`` -> [(url, {"rel": "next", ...}), ...].

    Parameter names are lower-cased; a repeated parameter keeps its first value (RFC 8288 3.3)."""
    out: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while m := _LINK.search(value, pos):
        url = m.group(1).strip()
        pos = m.end()
        params: dict[str, str] = {}
        while pm := _PARAM.match(value, pos):
            if pm.end() == pos:
                break
            raw = pm.group(2) or ""
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            params.setdefault(pm.group(1).lower(), raw)
            pos = pm.end()
        out.append((url, params))
    return out
