"""Settings of the declarative REST source: the HTTP client, authentication and the resources.

Everything is plain data so a pipeline file configures an API without Python; see the package
docstring (``openfuse_connectors.builtin.rest``) for a full YAML example.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from openfuse_connectors.builtin.rest.jsonpath import JsonPath
from openfuse_connectors.builtin.rest.schema import parse_type
from openfuse_connectors.config import ConnectorConfig

__all__ = [
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "CursorPaginator",
    "Incremental",
    "LinkHeaderPaginator",
    "NextUrlPaginator",
    "OAuth2ClientCredentials",
    "OffsetPaginator",
    "PageNumberPaginator",
    "Paginator",
    "ParentRef",
    "Resource",
    "RestConfig",
]


def _json_path(v: str) -> str:
    JsonPath(v)  # raises ValueError naming the problem
    return v


JsonPathStr = Annotated[str, AfterValidator(_json_path)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- authentication


class BearerAuth(_Model):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(_Model):
    """HTTP Basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr


class ApiKeyAuth(_Model):
    """An API key sent in a header (``X-API-Key: ...``) or a query parameter (``?api_key=...``)."""

    type: Literal["api_key"]
    name: str = Field(description="Header or query parameter name, e.g. `X-API-Key` or `api_key`.")
    key: SecretStr
    location: Literal["header", "query"] = "header"


class OAuth2ClientCredentials(_Model):
    """OAuth 2.0 client credentials grant (RFC 6749 section 4.4).

    The access token is fetched on first use, cached until ``expires_in`` (less a small margin),
    and fetched again once when the API answers 401.
    """

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    client_auth: Literal["basic", "body"] = Field(
        default="basic",
        description="How the client authenticates to the token endpoint: HTTP Basic (the RFC's "
        "default) or client_id/client_secret in the form body.",
    )
    token_params: dict[str, str] = Field(
        default_factory=dict, description="Extra form fields for the token request, e.g. `audience`."
    )

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        return _check_http_url(v, "token_url")


Auth = Annotated[
    BearerAuth | BasicAuth | ApiKeyAuth | OAuth2ClientCredentials,
    Field(discriminator="type"),
]


# -- pagination


class PageNumberPaginator(_Model):
    """``?page=1``, ``?page=2``, ... until a page is empty, short, or the last one."""

    type: Literal["page_number"]
    param: str = "page"
    start: int = 1
    page_size_param: str | None = None
    page_size: int | None = Field(default=None, ge=1)
    total_pages_path: JsonPathStr | None = Field(
        default=None, description="JSON path of the total page count in the body, e.g. `$.meta.pages`."
    )
    stop_on_short_page: bool = Field(
        default=True,
        description="Stop after a page with fewer than page_size records. Turn off when the server "
        "may cap page_size below the value asked for.",
    )


class OffsetPaginator(_Model):
    """``?offset=0&limit=100``, ``?offset=100&limit=100``, ... until a page is empty, short or the total."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(ge=1)
    start: int = Field(default=0, ge=0)
    total_path: JsonPathStr | None = Field(
        default=None, description="JSON path of the total record count in the body, e.g. `$.total`."
    )
    stop_on_short_page: bool = True


class CursorPaginator(_Model):
    """A cursor from the body (``$.meta.next_cursor``) sent back as ``?cursor=...`` until it is empty."""

    type: Literal["cursor"]
    cursor_path: JsonPathStr
    cursor_param: str = "cursor"


class LinkHeaderPaginator(_Model):
    """The RFC 8288 ``Link: <...>; rel="next"`` response header (GitHub style)."""

    type: Literal["link_header"]
    rel: str = "next"


class NextUrlPaginator(_Model):
    """The URL of the next page from the body (``$.next``), until it is empty."""

    type: Literal["next_url"]
    next_url_path: JsonPathStr


Paginator = Annotated[
    PageNumberPaginator | OffsetPaginator | CursorPaginator | LinkHeaderPaginator | NextUrlPaginator,
    Field(discriminator="type"),
]


# -- resources


class Incremental(_Model):
    """Ask the API for changed records only: the stored cursor is sent as query parameter ``param``."""

    param: str = Field(description="Query parameter bound to the cursor, e.g. `updated_since`.")
    start_value: str | None = Field(
        default=None, description="Sent (verbatim) on the first run, before any cursor is stored."
    )
    format: Literal["iso8601", "unix", "raw"] = Field(
        default="iso8601",
        description="How the stored cursor is written: ISO 8601 (`2024-01-01T00:00:00Z`), Unix "
        "seconds (timestamps and dates), or `raw` (the stored text, Arrow's rendering).",
    )


class ParentRef(_Model):
    """The resource is read once per record of ``resource``; ``fields`` fill the path's placeholders."""

    resource: str
    fields: dict[str, str] = Field(
        min_length=1,
        description="Placeholder (and added column) name -> field of the parent record, e.g. "
        "`{user_id: id}` for path `/users/{user_id}/orders`.",
    )


class Resource(_Model):
    """One stream: an endpoint, where its records are in the body, and how to page through it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description="Stream name used in the pipeline's `streams`.")
    path: str = Field(description="Appended to base_url; may hold `{placeholder}`s filled from `parent`.")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    record_selector: JsonPathStr | None = Field(
        default=None,
        description="JSON path of the records, e.g. `$.data.items[*]` or `data.items`. Unset: the "
        "body itself (a list of records, or one object as one record).",
    )
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    incremental: Incremental | None = None
    paginator: Paginator | None = Field(default=None, description="Unset: one request, no paging.")
    parent: ParentRef | None = None
    column_types: dict[str, str] | None = Field(
        default=None,
        alias="schema",
        description="Column name -> Arrow type name (`int64`, `string`, `json`, `decimal128(12, 2)`, "
        "`timestamp[us, tz=UTC]`); list every field (fields not listed arrive as extra columns, which "
        "the engine quarantines or evolves per the drift policy), including parent placeholder "
        "columns (else `string`). Unset: inferred from the first page(s); discover then makes requests.",
    )
    infer_pages: int = Field(default=1, ge=1, le=100, description="Pages read to infer the schema.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("resource name must not be empty")
        return v

    @field_validator("column_types")
    @classmethod
    def _types(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (v or {}).items():
            try:
                parse_type(text)
            except ValueError as e:
                raise ValueError(f"column {name!r}: {e}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Resource:
        if self.incremental is not None and not self.cursor_field:
            raise ValueError(f"resource {self.name!r}: incremental needs cursor_field")
        placeholders = self.placeholders()
        bound = set(self.parent.fields) if self.parent else set()
        if placeholders - bound:
            raise ValueError(
                f"resource {self.name!r}: path placeholder(s) {sorted(placeholders - bound)} are not "
                "filled by parent.fields"
            )
        if bound - placeholders:
            raise ValueError(
                f"resource {self.name!r}: parent.fields {sorted(bound - placeholders)} do not appear "
                f"as {{placeholder}} in path {self.path!r}"
            )
        return self

    def placeholders(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.path) if f}

    def arrow_types(self) -> dict[str, pa.DataType] | None:
        if self.column_types is None:
            return None
        return {k: parse_type(v) for k, v in self.column_types.items()}


_SECRET_LOCS = ("auth", "headers")


class RestConfig(ConnectorConfig):
    """A JSON REST API, described entirely in configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    base_url: str = Field(description="e.g. `https://api.example.com/v1`; resource paths are appended.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request. Put credentials in `auth`, which is kept secret.",
    )
    auth: Auth | None = None
    timeout: float = Field(default=30.0, gt=0, le=3600, description="Seconds per request.")
    max_retries: int = Field(default=5, ge=0, le=100, description="Retries on 429, 5xx and network errors.")
    backoff_base: float = Field(default=0.5, ge=0, description="First backoff ceiling in seconds.")
    backoff_max: float = Field(default=60.0, ge=0, description="Largest backoff ceiling in seconds.")
    max_retry_after: float = Field(
        default=300.0,
        ge=0,
        description="Longest Retry-After honoured; a server asking for more fails the run (retriable).",
    )
    rate_limit: float | None = Field(default=None, gt=0, description="Requests per second; unset: no limit.")
    rate_limit_burst: int = Field(default=1, ge=1, description="Token bucket size (requests in a burst).")
    verify_tls: bool = True
    resources: tuple[Resource, ...] = Field(min_length=1)

    @model_validator(mode="wrap")
    @classmethod
    def _hide_secret_inputs(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Errors under auth/headers (and model-level ones, whose input is the whole mapping) would
        # otherwise carry secrets as `input`, which callers print next to the field name.
        try:
            return handler(data)
        except ValidationError as e:
            details: list[Any] = []
            for err in e.errors(include_url=False):
                loc = err["loc"]
                hide = not loc or loc[0] in _SECRET_LOCS
                item: dict[str, Any] = {
                    "type": err["type"],
                    "loc": loc,
                    "input": "<redacted>" if hide else err["input"],
                }
                if "ctx" in err:
                    item["ctx"] = err["ctx"]
                details.append(item)
            raise ValidationError.from_exception_data(e.title, details) from None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        return _check_http_url(v, "base_url")

    @model_validator(mode="after")
    def _resources(self) -> RestConfig:
        names = [r.name for r in self.resources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"resource names must be unique; repeated: {dupes}")
        by_name = {r.name: r for r in self.resources}
        for r in self.resources:
            seen = [r.name]
            node = r
            while node.parent is not None:
                if node.parent.resource not in by_name:
                    raise ValueError(
                        f"resource {node.name!r}: parent {node.parent.resource!r} is not a resource; "
                        f"known: {names}"
                    )
                node = by_name[node.parent.resource]
                if node.name in seen:
                    raise ValueError(f"resources form a parent cycle: {' -> '.join([*seen, node.name])}")
                seen.append(node.name)
        return self

    def resource(self, name: str) -> Resource | None:
        for r in self.resources:
            if r.name == name:
                return r
        return None


_URL = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)


def _check_http_url(v: str, field: str) -> str:
    if not _URL.match(v):
        raise ValueError(f"{field} must be an absolute http(s) URL such as https://api.example.com/v1")
    return v
