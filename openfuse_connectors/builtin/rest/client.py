"""The HTTP side of the REST source: authentication, rate limiting, retries and JSON decoding.

One :class:`RestClient` (one ``httpx.Client``, so one connection pool) serves one operation of
the extractor (check, a schema sample, one stream's read); the token bucket and the OAuth2 token
cache belong to the extractor and are shared by all of them.

Retries
    429, 408, every 5xx and network errors (connect/read timeouts, resets) are retried up to
    ``max_retries`` times. The wait is ``Retry-After`` when the server sends one (seconds or an
    HTTP date; more than ``max_retry_after`` fails at once), else exponential backoff with full
    jitter: uniform(0, min(backoff_max, backoff_base * 2**retry)). Every attempt takes a token
    from the rate limiter. When the retries run out, :class:`RestRetriesExhaustedError` (a
    ``RetriableError``) names the URL, the last status and the number of attempts.

Credentials
    They go only to ``base_url``'s origin (and the OAuth2 token URL): a redirect or a next-page
    link to any other origin is refused. Error messages carry redacted URLs and bodies.
"""

from __future__ import annotations

import base64
import email.utils
import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from openfuse_connectors.builtin.rest.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    RestConfig,
)
from openfuse_connectors.builtin.rest.errors import (
    RestAuthError,
    RestHTTPError,
    RestResponseError,
    RestRetriesExhaustedError,
)
from openfuse_connectors.builtin.rest.ratelimit import TokenBucket
from openfuse_connectors.builtin.rest.redact import Redactor

__all__ = ["OAuth2Token", "Page", "RestClient", "backoff_delay", "parse_retry_after"]

USER_AGENT = "openfuse-rest/0.1"
_RETRY_STATUS = frozenset({408, 429})
_SNIPPET = 200


@dataclass(frozen=True)
class Page:
    """One decoded response.

    Attributes:
        url: the URL requested, redacted - for messages.
        request_url: the URL requested as sent - only to resolve relative next-page links.
        body: the decoded JSON (None for an empty body).
        links: every ``Link`` header, comma-joined.
    """

    url: str
    request_url: str = field(repr=False)
    body: Any
    links: str


class OAuth2Token:
    """The client-credentials access token, cached until shortly before it expires."""

    def __init__(self, auth: OAuth2ClientCredentials, *, clock: Any = time.monotonic):
        self.auth = auth
        self.requests = 0  # token requests made, for tests and metrics
        self._clock = clock
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = threading.Lock()

    def get(self, client: RestClient) -> str:
        with self._lock:
            now = self._clock()
            if self._token is not None and (self._expires_at is None or now < self._expires_at):
                return self._token
            self._token, lifetime = self._fetch(client)
            # Refresh a little early so a token does not expire between check and use.
            self._expires_at = None if lifetime is None else now + lifetime - min(60.0, lifetime * 0.1)
            return self._token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self, client: RestClient) -> tuple[str, float | None]:
        a = self.auth
        form = {"grant_type": "client_credentials", **a.token_params}
        if a.scope:
            form["scope"] = a.scope
        headers = {"Accept": "application/json"}
        secret = a.client_secret.get_secret_value()
        if a.client_auth == "basic":
            headers["Authorization"] = _basic(a.client_id, secret)
        else:
            form.update(client_id=a.client_id, client_secret=secret)
        self.requests += 1
        resp = client.send("POST", a.token_url, headers=headers, data=form)
        url = client.redactor.url(str(resp.request.url))
        if not resp.is_success:
            raise RestAuthError(
                url=url,
                status=resp.status_code,
                body=client.snippet(resp),
                hint="The OAuth2 token endpoint refused the client credentials; check client_id, "
                "client_secret, scope and token_url",
            )
        try:
            data = json.loads(resp.content)
            token = data["access_token"]
            expires = data.get("expires_in")
            lifetime = float(expires) if expires is not None else None
        except (ValueError, KeyError, TypeError) as e:
            raise RestAuthError(
                url=url,
                status=resp.status_code,
                body=client.snippet(resp),
                hint=f"The token response has no usable access_token/expires_in ({type(e).__name__})",
            ) from None
        if not isinstance(token, str) or not token:
            raise RestAuthError(url=url, status=resp.status_code, body="", hint="empty access_token")
        client.redactor.add(token)
        return token, lifetime


class RestClient:
    """Sends the extractor's requests (use as a context manager)."""

    def __init__(
        self,
        config: RestConfig,
        *,
        redactor: Redactor,
        limiter: TokenBucket | None = None,
        oauth: OAuth2Token | None = None,
        rng: random.Random | None = None,
        sleep: Any = time.sleep,
    ):
        self.config = config
        self.redactor = redactor
        self.limiter = limiter
        self.oauth = oauth
        self._rng = rng or random.Random()
        self._sleep = sleep
        origins = {_origin(httpx.URL(config.base_url))}
        if isinstance(config.auth, OAuth2ClientCredentials):
            origins.add(_origin(httpx.URL(config.auth.token_url)))
        self._origins = origins
        self._http = httpx.Client(
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **config.headers},
            timeout=httpx.Timeout(config.timeout),
            verify=config.verify_tls,
            follow_redirects=True,
            event_hooks={"request": [self._same_origin]},
        )

    def __enter__(self) -> RestClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests

    def get_json(self, url: str, params: Mapping[str, Any]) -> Page:
        """GET ``url`` with ``params`` (plus credentials) and decode the JSON body."""
        refreshed = False
        while True:
            token = self.oauth.get(self) if self.oauth is not None else None
            headers, auth_params = self._credentials(token)
            resp = self.send("GET", url, params={**params, **auth_params}, headers=headers)
            if resp.status_code == 401 and token is not None and not refreshed and self.oauth is not None:
                # The token may have been revoked or expired early: get a new one, once.
                self.oauth.invalidate(token)
                refreshed = True
                continue
            break
        shown = self.redactor.url(str(resp.request.url))
        if resp.status_code in (401, 403):
            raise RestAuthError(
                url=shown,
                status=resp.status_code,
                body=self.snippet(resp),
                hint="The API refused the credentials; check `auth`"
                + (" (a fresh OAuth2 token was refused too)" if refreshed else ""),
            )
        if not resp.is_success:
            raise RestHTTPError(url=shown, status=resp.status_code, body=self.snippet(resp))
        body = self._decode(resp, shown)
        return Page(shown, str(resp.request.url), body, ", ".join(resp.headers.get_list("link")))

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with rate limiting and retries; returns the first non-retriable response."""
        cfg = self.config
        # httpx replaces a URL's query with `params`; a next-page URL keeps its own, so merge.
        try:
            target = httpx.URL(url)
            if params:
                target = target.copy_merge_params(dict(params))
        except httpx.InvalidURL as e:
            raise RestResponseError(url=self.redactor.url(url), reason=f"not a valid URL ({e})") from None
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self.limiter.acquire()
            status: int | None = None
            retry_after: float | None = None
            try:
                resp = self._http.request(method, target, headers=headers, data=data)
            except httpx.TransportError as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except httpx.RequestError as e:  # too many redirects, undecodable content: not transient
                raise RestResponseError(
                    url=self.redactor.url(str(target)),
                    reason=self.redactor.text(f"the request failed: {type(e).__name__}: {e}"),
                ) from None
            else:
                status = resp.status_code
                if status not in _RETRY_STATUS and status < 500:
                    return resp
                reason = f"HTTP {status} {resp.reason_phrase}".strip()
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
                resp.close()
            if attempt > cfg.max_retries:
                raise RestRetriesExhaustedError(
                    url=self.redactor.url(str(target)),
                    status=status,
                    attempts=attempt,
                    reason=self.redactor.text(reason),
                )
            if retry_after is not None and retry_after > cfg.max_retry_after:
                raise RestRetriesExhaustedError(
                    url=self.redactor.url(str(target)),
                    status=status,
                    attempts=attempt,
                    reason=f"{reason}; the server asks to wait {retry_after:.0f}s (Retry-After), more "
                    f"than max_retry_after={cfg.max_retry_after:g}s",
                )
            wait = (
                retry_after
                if retry_after is not None
                else backoff_delay(attempt - 1, cfg.backoff_base, cfg.backoff_max, self._rng)
            )
            self._sleep(wait)

    # -- helpers

    def _credentials(self, token: str | None) -> tuple[dict[str, str], dict[str, str]]:
        auth = self.config.auth
        if token is not None:
            return {"Authorization": f"Bearer {token}"}, {}
        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {auth.token.get_secret_value()}"}, {}
        if isinstance(auth, BasicAuth):
            return {"Authorization": _basic(auth.username, auth.password.get_secret_value())}, {}
        if isinstance(auth, ApiKeyAuth):
            if auth.location == "header":
                return {auth.name: auth.key.get_secret_value()}, {}
            return {}, {auth.name: auth.key.get_secret_value()}
        return {}, {}

    def _decode(self, resp: httpx.Response, shown: str) -> Any:
        if resp.status_code == 204 or not resp.content:
            return None
        ctype = resp.headers.get("content-type", "")
        mime = ctype.split(";")[0].strip().lower()
        if mime and "json" not in mime and mime != "text/plain":
            raise RestResponseError(
                url=shown,
                reason="the response is not JSON; the API sent an error page or the path is wrong",
                content_type=ctype,
                body=self.snippet(resp),
            )
        try:
            return json.loads(resp.content)
        except ValueError as e:
            raise RestResponseError(
                url=shown,
                reason=f"the response is not valid JSON ({e})",
                content_type=ctype,
                body=self.snippet(resp),
            ) from None

    def snippet(self, resp: httpx.Response) -> str:
        try:
            text = resp.text[:_SNIPPET]
        except (UnicodeDecodeError, LookupError):
            text = repr(resp.content[:_SNIPPET])
        return self.redactor.text(text)

    def _same_origin(self, request: httpx.Request) -> None:
        if _origin(request.url) not in self._origins:
            raise RestResponseError(
                url=self.redactor.url(str(request.url)),
                reason="refusing to send credentials to another origin than base_url (a redirect or "
                "next-page link pointed there); put that host in base_url if it is really the API",
            )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's "Full Jitter")."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(retry, 62))))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, port
