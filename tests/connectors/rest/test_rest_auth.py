"""Every auth type against endpoints that require it; OAuth2 token caching and refresh; secrets
never shown in errors, configs or the JSON schema."""

from __future__ import annotations

from typing import Any

import pytest
from rest_server import BASIC, BEARER, CLIENT, HEADER_KEY, QUERY_KEY, Api

from openfuse_connectors.builtin.rest import RestConfig, RestExtractor
from openfuse_connectors.builtin.rest.errors import (
    RestAuthError,
    RestResponseError,
    RestRetriesExhaustedError,
)
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import StreamSpec

SECRETS = [BEARER, BASIC[1], HEADER_KEY, QUERY_KEY, CLIENT[1]]


def oauth(api: Api, **extra: Any) -> dict[str, Any]:
    return {
        "type": "oauth2_client_credentials",
        "token_url": f"{api.base_url}/oauth/token",
        "client_id": CLIENT[0],
        "client_secret": CLIENT[1],
        "scope": "read",
        **extra,
    }


def auths(api: Api) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "bearer": ("/auth/bearer", {"type": "bearer", "token": BEARER}),
        "basic": ("/auth/basic", {"type": "basic", "username": BASIC[0], "password": BASIC[1]}),
        "header": ("/auth/header", {"type": "api_key", "name": "X-API-Key", "key": HEADER_KEY}),
        "query": (
            "/auth/query",
            {"type": "api_key", "name": "api_key", "key": QUERY_KEY, "location": "query"},
        ),
        "oauth2_basic": ("/auth/oauth", oauth(api)),
        "oauth2_body": ("/auth/oauth", oauth(api, client_auth="body")),
    }


def extractor(api: Api, path: str, auth: dict[str, Any] | None, **resource: Any) -> RestExtractor:
    return RestExtractor(
        RestConfig.model_validate(
            {
                "base_url": api.base_url,
                "auth": auth,
                "max_retries": 1,
                "backoff_base": 0.01,
                "resources": [{"name": "r", "path": path, "record_selector": "data", **resource}],
            }
        )
    )


def ids(ex: RestExtractor) -> list[int]:
    return [r["id"] for b in ex.read(StreamSpec(name="r"), None) for r in b.to_pylist()]


@pytest.mark.parametrize("kind", ["bearer", "basic", "header", "query", "oauth2_basic", "oauth2_body"])
def test_each_auth_type_is_accepted_and_required(api: Api, kind: str) -> None:
    path, auth = auths(api)[kind]
    assert ids(extractor(api, path, auth)) == ([1, 2] if kind[:6] != "oauth2" else [1, 2, 3, 4, 5])
    with pytest.raises(RestAuthError, match=r"answered HTTP 401") as ei:
        extractor(api, path, None).check()
    assert ei.value.status == 401 and path in ei.value.url


@pytest.mark.parametrize("kind", ["bearer", "basic", "header", "query"])
def test_wrong_credentials_fail_naming_the_url_without_the_secret(api: Api, kind: str) -> None:
    path, auth = auths(api)[kind]
    secret_field = {"bearer": "token", "basic": "password", "header": "key", "query": "key"}[kind]
    wrong = {**auth, secret_field: "wrong-s3cr3t-value"}
    with pytest.raises(RestAuthError) as ei:
        extractor(api, path, wrong).check()
    msg = str(ei.value)
    assert f"{api.base_url}{path}" in msg and "HTTP 401" in msg and "check `auth`" in msg
    assert "wrong-s3cr3t-value" not in msg
    if kind == "query":
        assert "api_key=%2A%2A%2A" in msg or "api_key=***" in msg


def test_oauth2_token_is_fetched_once_and_cached_across_pages_and_reads(api: Api) -> None:
    ex = extractor(
        api, "/auth/oauth", oauth(api), paginator={"type": "page_number", "page_size": 5}, params={}
    )
    assert ids(ex) == list(range(1, 24))
    assert ids(ex) == list(range(1, 24))
    assert api.state.hits["/auth/oauth"] == 1 + 5 + 5  # sample + two reads of five pages
    assert api.state.token_requests == 1
    assert api.state.queries["/oauth/token"] == [{}]  # credentials in the body/header, not the URL


def test_oauth2_token_is_refreshed_once_on_401(api: Api) -> None:
    ex = extractor(api, "/auth/oauth", oauth(api))
    ex.check()
    assert api.state.token_requests == 1
    api.state.tokens.clear()  # the API revokes every token
    assert ids(ex) == [1, 2, 3, 4, 5]
    assert api.state.token_requests == 2


def test_oauth2_a_refused_fresh_token_fails_after_one_refresh(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = extractor(api, "/auth/oauth", oauth(api))
    # Tokens are issued but the API never accepts them (e.g. a missing scope).
    monkeypatch.setattr(api.state, "tokens", _Forgetful())
    with pytest.raises(RestAuthError, match="a fresh OAuth2 token was refused too"):
        ex.check()
    assert api.state.token_requests == 2


def test_oauth2_bad_client_secret_names_the_token_url_not_the_secret(api: Api) -> None:
    ex = extractor(api, "/auth/oauth", oauth(api, client_secret="not-the-s3cr3t"))
    with pytest.raises(RestAuthError, match="token endpoint refused the client credentials") as ei:
        ex.check()
    assert "/oauth/token" in str(ei.value) and "not-the-s3cr3t" not in str(ei.value)


def test_secrets_are_not_in_repr_or_retry_errors(api: Api) -> None:
    for kind, (_, auth) in auths(api).items():
        cfg = RestConfig.model_validate(
            {"base_url": api.base_url, "auth": auth, "resources": [{"name": "r", "path": "/x"}]}
        )
        for text in (repr(cfg), str(cfg), cfg.model_dump_json()):
            assert not any(s in text for s in SECRETS), kind
    _, auth = auths(api)["query"]
    ex = extractor(api, "/always/503", auth)
    with pytest.raises(RestRetriesExhaustedError) as ei:
        ex.check()
    assert QUERY_KEY not in str(ei.value) and "/always/503?api_key=" in str(ei.value)


def test_config_errors_do_not_echo_secrets(registry: Registry, api: Api) -> None:
    bad_auths = [
        {"type": "bearr", "token": BEARER},  # unknown type: the whole mapping is the input
        {"type": "basic", "username": "alice", "password": 12345678},  # a secret of the wrong type
        {"type": "api_key", "key": HEADER_KEY},  # a missing field next to a secret
    ]
    for auth in bad_auths:
        with pytest.raises(ConfigError) as ei:
            registry.extractor(
                "rest", {"base_url": api.base_url, "auth": auth, "resources": [{"name": "r", "path": "/x"}]}
            )
        msg = str(ei.value)
        assert ei.value.field is not None and ei.value.field.startswith("source.config.auth")
        assert BEARER not in msg and "12345678" not in msg and HEADER_KEY not in msg, msg
        assert BEARER not in repr(ei.value.value) and HEADER_KEY not in repr(ei.value.value)


def test_json_schema_marks_nested_secrets_write_only() -> None:
    schema = RestConfig.json_schema()
    defs = schema["$defs"]
    for model, field in [
        ("BearerAuth", "token"),
        ("BasicAuth", "password"),
        ("ApiKeyAuth", "key"),
        ("OAuth2ClientCredentials", "client_secret"),
    ]:
        assert defs[model]["properties"][field]["writeOnly"] is True
    assert {"base_url", "resources"} <= set(schema["required"])


class _Forgetful(set[str]):
    """A token store that never holds a token."""

    def add(self, element: str) -> None:
        return None


def test_credentials_are_never_sent_to_another_origin(api: Api) -> None:
    other = api.base_url.replace("127.0.0.1", "localhost") + "/auth/bearer"
    ex = extractor(api, other, {"type": "bearer", "token": BEARER})
    with pytest.raises(RestResponseError, match="refusing to send credentials to another origin"):
        ex.check()
    assert api.state.hits["/auth/bearer"] == 0
