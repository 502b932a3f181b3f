"""Keyset pagination with opaque cursors.

A cursor is base64url of ``{"r": <list name>, "k": [<sort key of the last item>]}``. Clients
pass it back unchanged; one that does not decode, belongs to another list, or has the wrong
shape is a 400 naming ``cursor``. Keyset (``WHERE key > last``) rather than OFFSET, so pages
stay stable while rows are added and cost the same at any depth.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, or_

from api.errors import Problem

__all__ = [
    "CursorParam",
    "LimitParam",
    "Page",
    "after_key",
    "decode_cursor",
    "encode_cursor",
]

T = TypeVar("T")

CursorParam = Annotated[
    str | None,
    Query(max_length=1000, description="`next_cursor` of the previous page; omit for the first page."),
]
LimitParam = Annotated[int, Query(ge=1, le=200, description="Items per page.")]


class Page(BaseModel, Generic[T]):
    """One page of a list. ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null at the end.")


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps({"r": kind, "k": [_plain(v) for v in key]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, kind: str, types: Sequence[type[Any]]) -> list[Any]:
    """The sort key in ``token``, each part converted by ``types`` (``uuid.UUID``, ``datetime``...)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("r") != kind:
            raise ValueError("cursor of another list")
        key = data["k"]
        if not isinstance(key, list) or len(key) != len(types):
            raise ValueError("wrong key length")
        return [_convert(t, v) for t, v in zip(types, key, strict=True)]
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise Problem.invalid(
            "cursor",
            "not a cursor of this list; pass the `next_cursor` of the previous page unchanged",
            status=400,
        ) from None


def after_key(columns: Sequence[Any], key: Sequence[Any], *, descending: bool = False) -> ColumnElement[bool]:
    """``(c1, c2, ...) > (k1, k2, ...)`` (or ``<``), spelled out so every database can use it."""
    clauses = []
    for i, col in enumerate(columns):
        eq = [columns[j] == key[j] for j in range(i)]
        step = col < key[i] if descending else col > key[i]
        clauses.append(and_(*eq, step))
    return or_(*clauses)


def _plain(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _convert(t: type[Any], v: Any) -> Any:
    if t is datetime:
        if not isinstance(v, str):
            raise ValueError("timestamp expected")
        d = datetime.fromisoformat(v)
        if d.tzinfo is None:
            raise ValueError("timezone expected")
        return d
    if t is int and not isinstance(v, int):
        raise ValueError("integer expected")
    if t is str and not isinstance(v, str):
        raise ValueError("string expected")
    return t(v)
