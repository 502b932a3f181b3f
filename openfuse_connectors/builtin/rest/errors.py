"""Errors of the REST source. URLs in them are redacted (no credentials, no API keys)."""

from __future__ import annotations

from openfuse_connectors.errors import FatalError, RetriableError

__all__ = ["RestAuthError", "RestHTTPError", "RestResponseError", "RestRetriesExhaustedError"]


class RestRetriesExhaustedError(RetriableError):
    """The server kept answering 429/5xx (or could not be reached) through every retry."""

    def __init__(self, *, url: str, status: int | None, attempts: int, reason: str):
        self.url = url
        self.status = status
        self.attempts = attempts
        self.reason = reason
        super().__init__(
            f"rest source: GET {url} failed after {attempts=}: {reason} ({status=}). The API is "
            "overloaded or unreachable; run again later, or raise max_retries / backoff_max."
        )


class RestHTTPError(FatalError):
    """The server refused the request with a status retrying will not change (400, 404, ...)."""

    def __init__(self, *, url: str, status: int, body: str, hint: str = ""):
        self.url = url
        self.status = status
        self.body = body
        super().__init__(
            f"rest source: GET {url} answered HTTP {status}: {body!r}"
            + (f". {hint}" if hint else ". Check the resource's path and params.")
        )


class RestAuthError(RestHTTPError):
    """401/403 from the API (after one token refresh for OAuth2), or a failing token endpoint."""


class RestResponseError(FatalError):
    """A response is not what the configuration says: not JSON, no records where expected,
    or a paginator that does not advance."""

    def __init__(self, *, url: str, reason: str, content_type: str | None = None, body: str | None = None):
        self.url = url
        self.reason = reason
        self.content_type = content_type
        self.body = body
        shown = f" content_type={content_type!r}" if content_type is not None else ""
        start = f" body starts: {body!r}" if body is not None else ""
        super().__init__(f"rest source: GET {url}: {reason}.{shown}{start}")
