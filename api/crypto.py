"""Encryption of connection secrets at rest: AES-256-GCM with a key derived from the settings.

A stored secret is the string ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The key is
derived from ``OPENFUSE_SECRET_KEY`` with HKDF-SHA256, so any long random string works as the
setting; the key id (first 8 hex digits of a hash of the derived key) names which key wrote a
value, which is what a later key rotation needs. The associated data binds each ciphertext to
its connection and field path, so a value copied into another row or field does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from api.errors import Problem

__all__ = ["SecretBox", "SecretDecryptionError"]

_VERSION = "v1"
_INFO = b"openfuse metadata secrets v1"
_NONCE = 12


class SecretDecryptionError(Problem):
    """A stored secret cannot be decrypted: wrong ``OPENFUSE_SECRET_KEY`` or a tampered value.

    A problem (500, ``secret-undecryptable``) because it is the operator's to fix, and saying so
    leaks nothing: the message names the key id, never a key or a value.
    """

    def __init__(self, *, key_id: str, reason: str):
        self.key_id = key_id
        super().__init__(
            500,
            "secret-undecryptable",
            f"cannot decrypt a stored secret ({key_id=}): {reason}. Check that OPENFUSE_SECRET_KEY is "
            "the key the secret was stored with.",
            title="A stored secret cannot be decrypted",
        )


class SecretBox:
    """Encrypts and decrypts short strings with AES-256-GCM."""

    def __init__(self, secret: str):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"openfuse key id" + key).hexdigest()[:8]

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE)
        ct = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return f"{_VERSION}.{self.key_id}.{base64.urlsafe_b64encode(nonce + ct).decode('ascii')}"

    def decrypt(self, token: str, *, context: str) -> str:
        version, key_id, body = [*token.split(".", 2), "", ""][:3]
        if version != _VERSION:
            raise SecretDecryptionError(key_id="?", reason=f"unknown format version {version!r}")
        if key_id != self.key_id:
            raise SecretDecryptionError(
                key_id=key_id, reason=f"it was written with another key (now {self.key_id})"
            )
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError) as e:
            raise SecretDecryptionError(
                key_id=key_id, reason="the value or its context does not match"
            ) from e
