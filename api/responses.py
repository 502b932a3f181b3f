"""Responses built straight from the operations' pydantic models.

FastAPI would validate a route's return value against its ``response_model`` again and encode
it twice (to Python, then to JSON); the operations already return instances of exactly that
model, so the routes serialize them once, in pydantic's Rust core. ``response_model`` stays on
each route for the OpenAPI document (and the schemathesis test checks the answers conform).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import Response
from pydantic import BaseModel

__all__ = ["model_response"]


def model_response(
    value: BaseModel | Sequence[BaseModel],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``value`` as an ``application/json`` response."""
    if isinstance(value, BaseModel):
        body = value.__pydantic_serializer__.to_json(value)
    else:
        body = b"[" + b",".join(v.__pydantic_serializer__.to_json(v) for v in value) + b"]"
    return Response(body, status_code=status_code, media_type="application/json", headers=dict(headers or {}))
