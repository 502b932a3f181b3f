"""Licenses: Ed25519-signed JWTs; anything wrong falls back to the community edition.

Every test signs with a key pair generated here; the production private key is not in the
repository, and the shipped public key is only used to show that a token signed by anyone else
is refused by default.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openfuse_policy.errors import LicenseError
from openfuse_policy.license import (
    LicenseState,
    features_for,
    issue_license,
    load_license,
    load_public_keys,
    public_key_jwk,
    verify_license,
)

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
KID = "test-2026"


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def keys(signer: Ed25519PrivateKey) -> dict[str, object]:
    return {KID: signer.public_key()}


def token(
    signer: Ed25519PrivateKey,
    *,
    days: int = 365,
    start: dt.datetime = NOW - dt.timedelta(days=30),
    features: tuple[str, ...] = ("abac", "masking"),
) -> str:
    return issue_license(
        pem(signer), KID, "Acme Corp", "enterprise", features, 25, start, start + dt.timedelta(days=days)
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_a_valid_license_grants_its_features(signer: Ed25519PrivateKey, keys: dict) -> None:
    tok = token(signer)
    header = json.loads(unb64(tok.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": KID, "typ": "JWT"}
    claims = json.loads(unb64(tok.split(".")[1]))
    assert {"sub", "edition", "features", "seats", "nbf", "exp", "iat", "iss"} <= set(claims)
    state = verify_license(tok, keys=keys, now=NOW)
    assert state.is_enterprise and state.reason is None and not state.in_grace
    assert state.customer == "Acme Corp" and state.seats == 25 and state.kid == KID
    assert state.features == {"abac", "masking"}
    assert features_for(state) == {"abac": True, "masking": True, "audit_export": False}
    assert "edition:  enterprise" in state.describe()


def refused(tok: str, keys: dict, code: str, now: dt.datetime = NOW) -> LicenseState:
    state = verify_license(tok, keys=keys, now=now)
    assert state.edition == "community" and state.features == frozenset(), state
    assert state.reason_code == code, state.reason
    assert features_for(state) == {"abac": False, "masking": False, "audit_export": False}
    return state


def test_a_changed_payload_is_refused(signer: Ed25519PrivateKey, keys: dict) -> None:
    h, p, s = token(signer).split(".")
    claims = json.loads(unb64(p))
    claims["features"].append("audit_export")
    claims["seats"] = 10_000
    state = refused(f"{h}.{b64(json.dumps(claims).encode())}.{s}", keys, "signature")
    assert "signature does not match" in (state.reason or "")
    # Even re-encoding the same bytes differently (padding) is not the signed text.
    refused(f"{h}.{p}=.{s}", keys, "signature")


def test_a_token_signed_by_another_key_is_refused(keys: dict) -> None:
    refused(token(Ed25519PrivateKey.generate()), keys, "signature")


def test_unknown_kid_is_refused(signer: Ed25519PrivateKey, keys: dict) -> None:
    tok = issue_license(
        pem(signer), "nobody-knows", "Acme", "enterprise", ["abac"], 1, NOW, NOW + dt.timedelta(days=9)
    )
    state = refused(tok, keys, "unknown-kid")
    assert "nobody-knows" in (state.reason or "")


def test_alg_switched_to_hs256_or_none_is_refused(signer: Ed25519PrivateKey, keys: dict) -> None:
    _, p, _ = token(signer).split(".")
    # HS256 "signed" with the public key as the HMAC secret: the classic algorithm-confusion attack.
    public_raw = signer.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for secret in (public_raw, public_key_jwk(signer.public_key(), KID)["x"].encode()):
        h = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
        sig = b64(hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest())
        refused(f"{h}.{p}.{sig}", keys, "alg")
    for alg in ("none", "None", "EdDSA ", "ES256", None):
        h = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": KID}).encode())
        refused(f"{h}.{p}.", keys, "alg")
        refused(f"{h}.{p}", keys, "malformed")


def test_expiry_grace_period_and_not_before(signer: Ed25519PrivateKey, keys: dict) -> None:
    start = NOW - dt.timedelta(days=100)
    # Expired 10 days ago: within the 14-day grace period, still enterprise, with a warning.
    in_grace = verify_license(token(signer, start=start, days=90), keys=keys, now=NOW)
    assert in_grace.is_enterprise and in_grace.in_grace
    assert "enterprise features stop in 4 days" in in_grace.warnings[0]
    # Expired 20 days ago: past grace, community.
    state = refused(token(signer, start=start, days=80), keys, "expired")
    assert "grace period is over" in (state.reason or "")
    # A shorter grace period can be configured.
    short = verify_license(
        token(signer, start=start, days=90), keys=keys, now=NOW, grace=dt.timedelta(days=7)
    )
    assert short.reason_code == "expired"
    # Not valid yet (beyond the 60 s clock skew allowance).
    state = refused(token(signer, start=NOW + dt.timedelta(days=2)), keys, "not-yet-valid")
    assert verify_license(
        token(signer, start=NOW + dt.timedelta(seconds=30)), keys=keys, now=NOW
    ).is_enterprise
    # Close to expiry: a warning, still valid.
    soon = verify_license(token(signer, start=start, days=110), keys=keys, now=NOW)
    assert soon.is_enterprise and not soon.in_grace and "renew soon" in soon.warnings[0]


@pytest.mark.parametrize(
    "garbage",
    ["", "   ", "abc", "a.b", "a.b.c", "a.b.c.d", "....", "é.é.é", "x" * 20_000, "eyJ.eyJ.sig", "!!.??.**"],
)
def test_garbage_is_refused_not_raised(garbage: str, keys: dict) -> None:
    state = verify_license(garbage, keys=keys, now=NOW)
    assert state.edition == "community"
    assert state.reason_code in ("missing", "malformed")


def test_structurally_odd_tokens_are_refused(signer: Ed25519PrivateKey, keys: dict) -> None:
    def signed(header: dict, claims: dict | list) -> str:
        h, p = b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())
        return f"{h}.{p}.{b64(signer.sign(f'{h}.{p}'.encode()))}"

    base = {"alg": "EdDSA", "typ": "JWT", "kid": KID}
    good = json.loads(unb64(token(signer).split(".")[1]))
    refused(signed({**base, "crit": ["exp"]}, good), keys, "malformed")
    refused(signed(base, [good]), keys, "malformed")
    refused(signed(base, {**good, "seats": "many"}), keys, "claims")
    refused(signed(base, {**good, "edition": "platinum"}), keys, "claims")
    refused(signed(base, {**good, "iss": "someone-else"}), keys, "issuer")
    refused(signed(base, {k: v for k, v in good.items() if k != "exp"}), keys, "claims")
    h = b64(json.dumps(base).encode())
    p = b64(json.dumps(good).encode()[:-1] + b', "seats": 1}')
    refused(f"{h}.{p}.{b64(signer.sign(f'{h}.{p}'.encode()))}", keys, "malformed")  # duplicate key


def test_the_shipped_key_is_the_default_and_refuses_foreign_tokens(signer: Ed25519PrivateKey) -> None:
    shipped = load_public_keys()
    assert len(shipped) == 1
    (kid,) = shipped
    tok = issue_license(
        pem(signer), kid, "Mallory", "enterprise", ["abac"], 1, NOW, NOW + dt.timedelta(days=9)
    )
    state = verify_license(tok, now=NOW)
    assert state.edition == "community" and state.reason_code == "signature"
    no_license = verify_license(None)
    assert no_license.reason_code == "missing" and "community" in no_license.describe()


def test_issue_refuses_bad_keys_and_claims(signer: Ed25519PrivateKey) -> None:
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(LicenseError, match="must be Ed25519"):
        issue_license(ec, KID, "Acme", "enterprise", ["abac"], 1, NOW, NOW + dt.timedelta(days=1))
    with pytest.raises(LicenseError, match="cannot load"):
        issue_license(b"not a key", KID, "Acme", "enterprise", ["abac"], 1, NOW, NOW + dt.timedelta(days=1))
    with pytest.raises(LicenseError, match="unknown feature"):
        issue_license(
            pem(signer), KID, "Acme", "enterprise", ["teleport"], 1, NOW, NOW + dt.timedelta(days=1)
        )
    with pytest.raises(LicenseError, match="not after"):
        issue_license(pem(signer), KID, "Acme", "enterprise", [], 1, NOW, NOW)


def test_load_license_from_env_or_file(signer: Ed25519PrivateKey, keys: dict, tmp_path: Path) -> None:
    tok = token(signer)
    assert load_license(env={"OPENFUSE_LICENSE": tok}, keys=keys, now=NOW).is_enterprise
    f = tmp_path / "license.jwt"
    f.write_text(tok + "\n")
    assert load_license(env={"OPENFUSE_LICENSE_FILE": str(f)}, keys=keys, now=NOW).is_enterprise
    assert load_license(f, env={}, keys=keys, now=NOW).customer == "Acme Corp"
    assert load_license(env={}, keys=keys, now=NOW).reason_code == "missing"
    with pytest.raises(LicenseError, match="cannot read license file"):
        load_license(tmp_path / "nope", env={}, keys=keys)
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(signer.public_key(), KID)]}))
    assert verify_license(tok, keys=load_public_keys(jwks), now=NOW).is_enterprise
