"""API keys: ``of_<prefix>_<secret>``, shown once, stored as a prefix plus a salted hash.

The prefix (12 hex digits) finds the row; the secret (32 random bytes, base64url) is checked
against ``hmac-sha256$<salt>$<digest>`` in constant time. A fast keyed hash is the right tool
here: the secret has 256 bits of entropy, so nothing is gained by a slow password hash, and
every request pays for the check.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["KEY_PATTERN", "NewKey", "hash_secret", "new_key", "parse_key", "verify_secret"]

KEY_PATTERN = re.compile(r"^of_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_ALGORITHM = "hmac-sha256"


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``token`` goes to the user once; ``prefix`` and ``secret_hash`` are stored."""

    token: str
    prefix: str
    secret_hash: str


def new_key() -> NewKey:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(token=f"of_{prefix}_{secret}", prefix=prefix, secret_hash=hash_secret(secret))


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{_ALGORITHM}${salt.hex()}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        algorithm, salt_hex, _ = stored.split("$", 2)
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if algorithm != _ALGORITHM:
        return False
    return hmac.compare_digest(hash_secret(secret, salt=salt), stored)


def parse_key(token: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed key, else None."""
    m = KEY_PATTERN.match(token)
    return (m.group(1), m.group(2)) if m else None
