"""License verification and feature flags.

A license is a JWT signed with Ed25519 (JWS ``alg`` ``EdDSA``, RFC 8037)::

    header  {"alg": "EdDSA", "typ": "JWT", "kid": "openfuse-2026-01"}
    claims  {"iss": "openfuse", "sub": "<customer>", "edition": "enterprise",
             "features": ["abac", "masking"], "seats": 50,
             "iat": 1767225600, "nbf": 1767225600, "exp": 1798761600, "jti": "<uuid>"}

It is verified here with ``cryptography`` against the public keys shipped in
``openfuse_policy/keys/public_keys.json`` (a JWKS; the private keys are not in the repository).
Only ``EdDSA`` is accepted: ``none``, ``HS256`` and anything else are refused outright, so a
public key can never be used as an HMAC secret.

A license that is missing, malformed, tampered with, signed by an unknown key, not yet valid or
expired for longer than the grace period (14 days by default) does not raise: the instance runs
as the **community** edition and :attr:`LicenseState.reason` says why. Within the grace period
the license still applies, with ``in_grace`` set and a warning to renew.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from openfuse_policy.errors import LicenseError
from openfuse_policy.tiers import COMMUNITY, ENTERPRISE, FEATURES

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_ISSUER",
    "LICENSE_ENV",
    "LICENSE_FILE_ENV",
    "LicenseState",
    "features_for",
    "issue_license",
    "load_license",
    "load_public_keys",
    "public_key_jwk",
    "read_license_token",
    "verify_license",
]

DEFAULT_GRACE = dt.timedelta(days=14)
DEFAULT_ISSUER = "openfuse"
LICENSE_ENV = "OPENFUSE_LICENSE"
LICENSE_FILE_ENV = "OPENFUSE_LICENSE_FILE"
CLOCK_SKEW = dt.timedelta(seconds=60)
_MAX_TOKEN = 16_384
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")

Edition = Literal["community", "enterprise"]
ReasonCode = Literal[
    "missing", "malformed", "alg", "unknown-kid", "signature", "claims", "issuer", "not-yet-valid", "expired"
]

KeysArg = Mapping[str, "Ed25519PublicKey | bytes | str"] | None


@dataclass(frozen=True, slots=True)
class LicenseState:
    """What the running instance may do.

    Attributes:
        edition: ``community`` or ``enterprise``.
        features: the granted features (empty for community).
        customer: the ``sub`` claim.
        seats: licensed seats.
        expires: the ``exp`` claim (UTC).
        in_grace: expired, but within the grace period: still applies; renew now.
        reason: why the instance fell back to community (``None`` when the license applies).
        reason_code: a stable code for ``reason`` (``missing``, ``malformed``, ``alg``,
            ``unknown-kid``, ``signature``, ``claims``, ``issuer``, ``not-yet-valid``, ``expired``).
        warnings: things to tell the operator (grace period, days left).
    """

    edition: Edition
    features: frozenset[str] = frozenset()
    customer: str | None = None
    seats: int | None = None
    expires: dt.datetime | None = None
    not_before: dt.datetime | None = None
    issued_at: dt.datetime | None = None
    issuer: str | None = None
    kid: str | None = None
    license_id: str | None = None
    in_grace: bool = False
    reason: str | None = None
    reason_code: ReasonCode | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def community(cls, reason: str, code: ReasonCode) -> LicenseState:
        return cls(edition=COMMUNITY, reason=reason, reason_code=code)

    @property
    def is_enterprise(self) -> bool:
        return self.edition == ENTERPRISE

    def has(self, feature: str) -> bool:
        return feature in self.features

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``/api/v1/license`` shows; the token itself is never included)."""
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "edition": self.edition,
            "features": sorted(self.features),
            "customer": self.customer,
            "seats": self.seats,
            "expires": iso(self.expires),
            "not_before": iso(self.not_before),
            "issued_at": iso(self.issued_at),
            "issuer": self.issuer,
            "kid": self.kid,
            "license_id": self.license_id,
            "in_grace": self.in_grace,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "warnings": list(self.warnings),
        }

    def describe(self) -> str:
        """A few lines for people."""
        if not self.is_enterprise:
            lines = ["edition:  community (no enterprise features)"]
            if self.reason:
                lines.append(f"reason:   {self.reason}")
            lines.append("features: built-in workspace isolation and roles (viewer, editor, admin)")
        else:
            lines = [
                "edition:  enterprise",
                f"customer: {self.customer}",
                f"features: {', '.join(sorted(self.features)) or '(none)'}",
                f"seats:    {self.seats}",
                f"valid:    {self.not_before:%Y-%m-%d} to {self.expires:%Y-%m-%d}" if self.expires else "",
                f"key:      {self.kid}",
            ]
        lines.extend(f"warning:  {w}" for w in self.warnings)
        return "\n".join(ln for ln in lines if ln)


def features_for(state: LicenseState) -> dict[str, bool]:
    """Feature flags for ``/api/v1/features``: every known feature, plus any extra the license grants."""
    flags = {name: name in state.features for name in FEATURES}
    flags.update({f: True for f in state.features if f not in flags})
    return flags


# -- keys ------------------------------------------------------------------------------------


def load_public_keys(path: str | Path | None = None) -> dict[str, Ed25519PublicKey]:
    """The trusted license keys: ``kid -> public key`` from a JWKS file (default: the shipped one)."""
    if path is None:
        text = (
            resources.files("openfuse_policy").joinpath("keys/public_keys.json").read_text(encoding="utf-8")
        )
        where = "openfuse_policy/keys/public_keys.json"
    else:
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        doc = json.loads(text)
        return {k["kid"]: _jwk_public_key(k) for k in doc["keys"]}
    except (ValueError, KeyError, TypeError) as e:
        raise LicenseError(f"{where} is not a JWKS of Ed25519 keys: {e}") from e


def public_key_jwk(public_key: Ed25519PublicKey | bytes | str, kid: str) -> dict[str, str]:
    """A JWK for an Ed25519 public key (PEM or object), for ``keys/public_keys.json``."""
    from cryptography.hazmat.primitives import serialization

    key = _public_key(public_key)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": _b64e(raw)}


def _jwk_public_key(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError(f"key {jwk.get('kid')!r} is not an Ed25519 OKP key")
    return Ed25519PublicKey.from_public_bytes(_b64d(str(jwk["x"])))


def _public_key(key: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    try:
        loaded = serialization.load_pem_public_key(key.encode() if isinstance(key, str) else key)
    except ValueError as e:
        raise LicenseError(f"not a PEM public key: {e}") from e
    if not isinstance(loaded, Ed25519PublicKey):
        raise LicenseError(f"license keys must be Ed25519, not {type(loaded).__name__}")
    return loaded


# -- verification ----------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, code: ReasonCode, message: str):
        self.code = code
        super().__init__(message)


def verify_license(
    token: str | None,
    *,
    keys: KeysArg = None,
    now: dt.datetime | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
    issuer: str = DEFAULT_ISSUER,
) -> LicenseState:
    """Verify a license token; never raises for a bad token (falls back to community).

    Args:
        token: the JWT, or ``None`` for no license.
        keys: ``kid -> public key`` (object or PEM); default: the keys shipped in the package.
        now: the time to check against (default: the system clock).
        grace: how long after ``exp`` the license keeps applying, with a warning.
        issuer: the required ``iss`` claim.
    """
    if token is None or not token.strip():
        return LicenseState.community("no license installed", "missing")
    trusted = load_public_keys() if keys is None else {k: _public_key(v) for k, v in keys.items()}
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    try:
        return _verify(token.strip(), trusted, now, grace, issuer)
    except _Invalid as e:
        return LicenseState.community(f"license refused: {e}", e.code)


def _verify(
    token: str, keys: Mapping[str, Ed25519PublicKey], now: dt.datetime, grace: dt.timedelta, issuer: str
) -> LicenseState:
    from cryptography.exceptions import InvalidSignature

    if len(token) > _MAX_TOKEN:
        raise _Invalid("malformed", f"token is longer than {_MAX_TOKEN} characters")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _Invalid(
            "malformed", "a license token has three dot-separated parts (header.payload.signature)"
        )
    header = _json_part(parts[0], "header")
    alg = header.get("alg")
    if alg != "EdDSA":
        raise _Invalid("alg", f"alg {alg!r} is not accepted; licenses are signed with EdDSA (Ed25519)")
    if header.get("typ", "JWT") != "JWT":
        raise _Invalid("malformed", f"typ {header.get('typ')!r} is not JWT")
    if "crit" in header:
        raise _Invalid("malformed", "critical header extensions are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _Invalid("malformed", "header has no kid")
    key = keys.get(kid)
    if key is None:
        raise _Invalid(
            "unknown-kid", f"signed with unknown key {kid!r}; trusted keys: {', '.join(sorted(keys))}"
        )
    signature = _b64_part(parts[2], "signature")
    if len(signature) != 64:
        raise _Invalid("signature", "an Ed25519 signature is 64 bytes")
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        raise _Invalid(
            "signature", "signature does not match (token altered or signed with another key)"
        ) from None

    claims = _json_part(parts[1], "payload")
    sub = _claim(claims, "sub", str)
    edition = _claim(claims, "edition", str)
    if edition not in (COMMUNITY, ENTERPRISE):
        raise _Invalid("claims", f"edition {edition!r} is not community or enterprise")
    features = claims.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise _Invalid("claims", "features must be a list of strings")
    seats = _claim(claims, "seats", int)
    if seats < 0:
        raise _Invalid("claims", f"seats={seats} is negative")
    iss = _claim(claims, "iss", str)
    if iss != issuer:
        raise _Invalid("issuer", f"issuer {iss!r} is not {issuer!r}")
    nbf, exp, iat = (_time_claim(claims, c) for c in ("nbf", "exp", "iat"))
    if exp <= nbf:
        raise _Invalid("claims", "exp is not after nbf")
    if now + CLOCK_SKEW < nbf:
        raise _Invalid("not-yet-valid", f"license is valid from {nbf.isoformat()}, it is {now.isoformat()}")
    warnings: list[str] = []
    in_grace = False
    if now >= exp:
        if now > exp + grace:
            raise _Invalid(
                "expired", f"license expired {exp.isoformat()}, and the {grace.days}-day grace period is over"
            )
        in_grace = True
        left = exp + grace - now
        warnings.append(
            f"license expired {exp:%Y-%m-%d}; enterprise features stop in {left.days} days "
            f"({(exp + grace):%Y-%m-%d}). Renew the license."
        )
    elif exp - now < dt.timedelta(days=30):
        warnings.append(f"license expires {exp:%Y-%m-%d} ({(exp - now).days} days); renew soon")
    jti = claims.get("jti")
    return LicenseState(
        edition=edition,
        features=frozenset(features) if edition == ENTERPRISE else frozenset(),
        customer=sub,
        seats=seats,
        expires=exp,
        not_before=nbf,
        issued_at=iat,
        issuer=iss,
        kid=kid,
        license_id=jti if isinstance(jti, str) else None,
        in_grace=in_grace,
        warnings=tuple(warnings),
    )


def _b64_part(part: str, what: str) -> bytes:
    if not _B64URL.match(part):
        raise _Invalid("malformed", f"{what} is not base64url")
    try:
        return _b64d(part)
    except (binascii.Error, ValueError):
        raise _Invalid("malformed", f"{what} is not base64url") from None


def _json_part(part: str, what: str) -> dict[str, Any]:
    raw = _b64_part(part, what)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise _Invalid("malformed", f"{what} repeats a key")
        return dict(pairs)

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise _Invalid("malformed", f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise _Invalid("malformed", f"{what} is not a JSON object")
    return value


def _claim(claims: Mapping[str, Any], name: str, kind: type) -> Any:
    v = claims.get(name)
    if not isinstance(v, kind) or isinstance(v, bool) or (kind is str and not v):
        raise _Invalid("claims", f"claim {name!r} is missing or not a {kind.__name__}")
    return v


def _time_claim(claims: Mapping[str, Any], name: str) -> dt.datetime:
    v = claims.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Invalid("claims", f"claim {name!r} is missing or not a NumericDate")
    try:
        return dt.datetime.fromtimestamp(v, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise _Invalid("claims", f"claim {name!r}={v} is out of range") from None


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- reading ---------------------------------------------------------------------------------


def read_license_token(
    file: str | Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The license token and where it came from: ``file``, else ``$OPENFUSE_LICENSE``, else
    the file named by ``$OPENFUSE_LICENSE_FILE``. ``(None, "none")`` when there is none."""
    env = os.environ if env is None else env
    if not file and env.get(LICENSE_ENV):
        return env[LICENSE_ENV].strip(), f"${LICENSE_ENV}"
    path = file or env.get(LICENSE_FILE_ENV)
    if not path:
        return None, "none"
    try:
        return Path(path).read_text(encoding="utf-8").strip(), str(path)
    except OSError as e:
        raise LicenseError(f"cannot read license file {path}: {e.strerror or e}") from e


def load_license(
    file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    keys: KeysArg = None,
    now: dt.datetime | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
) -> LicenseState:
    """Read the license (see :func:`read_license_token`) and verify it."""
    token, _ = read_license_token(file, env)
    return verify_license(token, keys=keys, now=now, grace=grace)


# -- issuing ---------------------------------------------------------------------------------


def issue_license(
    private_key_pem: bytes | str,
    kid: str,
    customer: str,
    edition: Edition = "enterprise",
    features: Iterable[str] = (),
    seats: int = 0,
    not_before: dt.datetime | None = None,
    expires: dt.datetime | None = None,
    *,
    issuer: str = DEFAULT_ISSUER,
    issued_at: dt.datetime | None = None,
    license_id: str | None = None,
) -> str:
    """Sign a license token with an Ed25519 private key (PEM, unencrypted PKCS#8).

    Raises:
        LicenseError: the key is not an Ed25519 private key, or the claims are inconsistent.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(
            private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem, password=None
        )
    except (ValueError, TypeError) as e:
        raise LicenseError(f"cannot load the private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenseError(f"license keys must be Ed25519, not {type(key).__name__}")
    if edition not in (COMMUNITY, ENTERPRISE):
        raise LicenseError(f"edition {edition!r} is not community or enterprise")
    if not customer or not kid:
        raise LicenseError("customer and kid must not be empty")
    now = dt.datetime.now(dt.UTC)
    nbf = not_before or now
    exp = expires or nbf + dt.timedelta(days=365)
    if exp <= nbf:
        raise LicenseError(f"expires {exp.isoformat()} is not after not_before {nbf.isoformat()}")
    feats = sorted(set(features))
    unknown = [f for f in feats if f not in FEATURES]
    if unknown:
        raise LicenseError(f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(FEATURES)}")
    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    claims = {
        "iss": issuer,
        "sub": customer,
        "edition": edition,
        "features": feats,
        "seats": int(seats),
        "iat": int((issued_at or now).timestamp()),
        "nbf": int(nbf.timestamp()),
        "exp": int(exp.timestamp()),
        "jti": license_id or str(uuid.uuid4()),
    }
    signing_input = f"{_b64e(_compact(header))}.{_b64e(_compact(claims))}"
    return f"{signing_input}.{_b64e(key.sign(signing_input.encode('ascii')))}"


def _compact(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
