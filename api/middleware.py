"""Request guards: bodies too large (413) or not JSON (415), answered as problem documents.

A ``Content-Length`` over the limit is refused before the app runs; a body without one
(chunked) is counted as it is read, and the route's body read fails with a 413 once it passes
the limit. (FastAPI's own ``max_body_size`` is not used: it answers in text/plain.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem, problem_response

__all__ = ["BodyGuardMiddleware"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length_header = headers.get("content-length")
        problem = None
        try:
            length = int(length_header) if length_header is not None else None
        except ValueError:
            length = None
            problem = Problem(400, "bad-request", "the Content-Length header is not a number")
        has_body = (length or 0) > 0 or "chunked" in headers.get("transfer-encoding", "").lower()
        if problem is None and length is not None and length > self.max_body_size:
            problem = Problem(
                413,
                "content-too-large",
                f"the request body has {length} bytes; the limit is {self.max_body_size}",
                extra={"limit": self.max_body_size},
            )
        elif problem is None and has_body and not _is_json(headers.get("content-type", "")):
            got = headers.get("content-type") or "none"
            problem = Problem(
                415,
                "unsupported-media-type",
                f"request bodies must be application/json (got {got[:100]})",
            )
        if problem is not None:
            response = problem_response(problem, scope.get("path"))
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    # FastAPI re-raises HTTPExceptions from the body read; the app's handler answers.
                    raise HTTPException(
                        413, f"the request body exceeds the limit of {self.max_body_size} bytes"
                    )
            return message

        await self.app(scope, counting_receive, send)
