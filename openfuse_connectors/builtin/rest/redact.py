"""Keep credentials out of error messages: URLs lose API-key parameters and user info, and every
configured secret (plus OAuth access tokens as they are issued) is masked in any text."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from openfuse_connectors.builtin.rest.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    RestConfig,
)

__all__ = ["MASK", "Redactor"]

MASK = "***"
#: Query parameters masked in URLs whatever the configuration says.
SENSITIVE_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "client_secret",
        "password",
        "secret",
        "sig",
        "signature",
    }
)


class Redactor:
    def __init__(self, secrets: set[str] | None = None, params: set[str] | None = None):
        self._secrets = {s for s in (secrets or set()) if s}
        self._params = {p.lower() for p in SENSITIVE_PARAMS | (params or set())}

    @classmethod
    def for_config(cls, config: RestConfig) -> Redactor:
        secrets: set[str] = set()
        params: set[str] = set()
        auth = config.auth
        if isinstance(auth, BearerAuth):
            secrets.add(auth.token.get_secret_value())
        elif isinstance(auth, BasicAuth):
            secrets.add(auth.password.get_secret_value())
        elif isinstance(auth, ApiKeyAuth):
            secrets.add(auth.key.get_secret_value())
            if auth.location == "query":
                params.add(auth.name)
        elif isinstance(auth, OAuth2ClientCredentials):
            secrets.add(auth.client_secret.get_secret_value())
        return cls(secrets, params)

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (e.g. an OAuth access token just issued)."""
        if secret:
            self._secrets.add(secret)

    def text(self, text: str) -> str:
        # Longest first, so a secret containing another is masked whole.
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in text:
                text = text.replace(s, MASK)
        return text

    def url(self, url: str) -> str:
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.text(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in self._params for k, _ in pairs):
                query = urlencode(
                    [(k, MASK if k.lower() in self._params else v) for k, v in pairs], safe="*:,"
                )
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))
