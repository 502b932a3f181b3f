"""Errors as ``application/problem+json`` (RFC 9457), for every status the API answers with.

Each problem has a stable ``type`` URI, ``https://openfuse.dev/problems/<slug>``, that clients
switch on; ``title`` is the fixed summary of that type, ``detail`` says what happened this time,
``instance`` is the request path. Validation problems add ``errors: [{field, message, value?}]``
with the field path in the request (``streams[0].mode``, ``source.connection``, ``cursor``).
Values are echoed only when short, scalar and not secret-looking, and a 500 never carries the
exception text: it is logged with an ``error_id`` the response repeats.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from openfuse_connectors.errors import OpenFuseError

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "ApiError",
    "FieldError",
    "Problem",
    "ProblemPublic",
    "field_errors_problem",
    "install_error_handlers",
    "loc_to_field",
    "problem_for_exception",
    "problem_response",
    "safe_value",
]

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://openfuse.dev/problems/"
PROBLEM_JSON = "application/problem+json"

#: slug and title per status for problems raised by the framework (routing, body limits ...).
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("content-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Request validation failed"),
    500: ("internal-error", "Internal server error"),
    502: ("connector-error", "The connector failed"),
    503: ("service-unavailable", "Service unavailable"),
}

_SECRETISH = ("password", "secret", "token", "dsn", "key", "credential", "authorization")


class ApiError(OpenFuseError):
    """Root of the API package's errors."""


class FieldError(BaseModel):
    """One invalid input: where it is, what is wrong, and (when safe to show) the value."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Path of the field in the request, e.g. `streams[0].mode` or `cursor`.")
    message: str
    value: Any = Field(default=None, description="The offending value, when short and not secret.")


class PolicyDiagnostic(BaseModel):
    """One of Cedar's diagnostics on a policy text it refused."""

    message: str
    policy_id: str | None
    line: int | None
    kind: str


class ProblemPublic(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://openfuse.dev/problems/validation-error"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    reasons: list[str] | None = Field(
        default=None,
        description="`403 forbidden`: why the policy engine denied - the determining policies "
        "(`forbidden by <id>`), `no policy permits <action> (default deny)`, evaluation errors.",
    )
    diagnostics: list[PolicyDiagnostic] | None = Field(
        default=None,
        description="`422 policy-invalid`: Cedar's diagnostics on the refused text (line, policy id, kind).",
    )


class Problem(ApiError):
    """Raise to answer with a problem document.

    Args:
        status: HTTP status.
        slug: the stable part of the type URI (``not-found``, ``validation-error`` ...).
        detail: what happened, for a person; never a secret value.
        title: fixed summary of the type; defaults to the status's.
        errors: field errors, for validation problems.
        headers: extra response headers (``WWW-Authenticate``, ``Allow``).
        extra: more members of the document (``reasons`` for a denial).
    """

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ):
        self.status = status
        self.slug = slug
        self.title = title or _BY_STATUS.get(status, ("", "Error"))[1]
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(f"{status} {slug}: {detail}")

    # -- the common ones

    @classmethod
    def not_found(cls, resource_type: str, resource_id: object) -> Problem:
        return cls(404, "not-found", f"{resource_type} {resource_id} does not exist")

    @classmethod
    def conflict(cls, detail: str, *, field: str | None = None, value: Any = None) -> Problem:
        errors = [FieldError(field=field, message=detail, value=safe_value(field, value))] if field else []
        return cls(409, "conflict", detail, errors=errors)

    @classmethod
    def invalid(cls, field: str, message: str, *, value: Any = None, status: int = 422) -> Problem:
        """One invalid field (422 unless said otherwise)."""
        slug = "validation-error" if status == 422 else _BY_STATUS.get(status, ("bad-request", ""))[0]
        return cls(
            status,
            slug,
            f"{field}: {message}",
            errors=[FieldError(field=field, message=message, value=safe_value(field, value))],
        )

    def document(self, instance: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            doc["errors"] = [e.model_dump(exclude_none=True) for e in self.errors]
        doc.update(self.extra)
        return doc


def problem_response(problem: Problem, instance: str | None) -> JSONResponse:
    return JSONResponse(
        problem.document(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def loc_to_field(loc: Sequence[Any]) -> str:
    """``("body", "streams", 0, "mode")`` -> ``streams[0].mode``; ``("query", "cursor")`` -> ``cursor``.

    The whole body is ``body``.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where = parts.pop(0)
        if not parts:
            return str(where)
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def safe_value(field: str | None, value: Any) -> Any:
    """``value`` if it is fine to echo: a short scalar in a field that does not look secret."""
    if value is None or field is None:
        return None
    low = field.lower()
    if low.startswith("config") or any(w in low for w in _SECRETISH):
        return None
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "..."
    return None


def _validation_problem(exc: RequestValidationError) -> Problem:
    return field_errors_problem(list(exc.errors()))


def field_errors_problem(errors: Sequence[Any]) -> Problem:
    """The problem for pydantic-style errors (``loc``, ``msg``, ``type``, ``input``): a 400 for
    malformed JSON, else a 422 naming every field. Shared by REST bodies and GraphQL inputs."""
    errors = list(errors)
    if any(e.get("type") == "json_invalid" for e in errors):
        err = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (err.get("ctx") or {}).get("error", "invalid JSON")
        pos = err["loc"][1] if len(err["loc"]) > 1 else None
        message = f"malformed JSON: {reason}" + (f" at position {pos}" if isinstance(pos, int) else "")
        return Problem(
            400,
            "malformed-json",
            message,
            title="Malformed JSON body",
            errors=[FieldError(field="body", message=message)],
        )
    fields = []
    for e in errors:
        field = loc_to_field(e.get("loc", ()))
        value = None if e.get("type") == "missing" else safe_value(field, e.get("input"))
        fields.append(FieldError(field=field, message=str(e.get("msg", "invalid")), value=value))
    shown = "; ".join(f"{f.field}: {f.message}" for f in fields[:3])
    more = f" (+{len(fields) - 3} more)" if len(fields) > 3 else ""
    return Problem(422, "validation-error", shown + more, errors=fields)


def problem_for_exception(exc: BaseException, where: str) -> Problem:
    """The problem to answer with for an exception that is not one: a database error is a 409
    (integrity) or a 503, anything else a 500. Both are logged with an ``error_id`` and the
    traceback frames, never the exception's message (it may quote a DSN or a token)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, IntegrityError):
        # A race the route's own checks did not catch (two creates of one name at once).
        return Problem(409, "conflict", "the request conflicts with existing data; reload and retry")
    error_id = uuid.uuid4().hex
    if isinstance(exc, OperationalError | InterfaceError):
        # The driver's message can name hosts and users: the log gets the class only.
        log.error("database unavailable (%s, error_id=%s) on %s", type(exc).__name__, error_id, where)
        return Problem(
            503,
            "database-unavailable",
            f"the metadata database could not complete the request; try again later (error_id {error_id})",
            title="Database unavailable",
            extra={"error_id": error_id},
        )
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unexpected %s (error_id=%s) on %s\n%s", type(exc).__name__, error_id, where, frames)
    return Problem(
        500,
        "internal-error",
        f"an unexpected error occurred; quote error_id {error_id} when reporting it",
        extra={"error_id": error_id},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, the framework's included, as a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation_problem(exc), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _BY_STATUS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = {
            404: f"no route matches {request.method} {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
            413: "the request body is larger than the server accepts",
        }.get(exc.status_code, exc.detail if isinstance(exc.detail, str) else title)
        problem = Problem(exc.status_code, slug, detail, title=title, headers=exc.headers)
        return problem_response(problem, request.url.path)

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, IntegrityError | OperationalError | InterfaceError):
            return await on_unexpected(request, exc)
        problem = problem_for_exception(exc, f"{request.method} {request.url.path}")
        return problem_response(problem, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        problem = problem_for_exception(exc, f"{request.method} {request.url.path}")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ResponseValidationError, on_unexpected)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_database)
    app.add_exception_handler(Exception, on_unexpected)
