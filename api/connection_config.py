"""Connector configs as stored: validated by the connector's model, secrets sealed.

Which values are secret comes from the connector's config model: every ``SecretStr``, at any
depth (a REST source's ``auth.token`` as much as PostgreSQL's top-level ``dsn``). They are
stored as ``{"$encrypted": token}`` (:class:`api.crypto.SecretBox`, bound to the connection id
and the field path), shown as ``{"set": true}``, and decrypted only to hand the config to the
connector for ``check``/``discover``. Errors name the field (``config.port``) and never echo a
secret value.
"""

from __future__ import annotations

import re
import types
import typing
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr, ValidationError

from api.crypto import SecretBox
from api.errors import FieldError, Problem, loc_to_field, safe_value
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.connector import Connector
from openfuse_connectors.registry import Registry

__all__ = [
    "ENCRYPTED",
    "apply_patch",
    "connector_for",
    "public_config",
    "redact",
    "seal",
    "secret_values",
    "unseal",
    "validate_config",
]

ENCRYPTED = "$encrypted"
_KEEP = {"set": True}


def connector_for(registry: Registry, name: str, *, field: str = "connector") -> Connector:
    """The registered connector ``name`` that takes a config, or a 422 naming ``field``."""
    conn = registry.connectors.get(name)
    if conn is None:
        known = ", ".join(sorted(n for n, c in registry.connectors.items() if c.config_model)) or "(none)"
        hint = (
            f"; its plugin failed to load: {registry.broken[name].error}" if name in registry.broken else ""
        )
        raise Problem.invalid(field, f"unknown connector {name!r}; installed: {known}{hint}", value=name)
    if conn.config_model is None:
        raise Problem.invalid(field, f"connector {name!r} is a transform and takes no connection", value=name)
    return conn


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_secret_annotation(a) for a in typing.get_args(annotation))
    return False


def _top_level_secrets(model: type[ConnectorConfig]) -> dict[str, str]:
    """Secret fields of ``model``: name as stored (the alias when there is one) -> field name."""
    return {
        (f.alias or name): name
        for name, f in model.model_fields.items()
        if _is_secret_annotation(f.annotation)
    }


def validate_config(conn: Connector, data: dict[str, Any]) -> ConnectorConfig:
    """Validate ``data`` with the connector's model; a 422 listing every bad field on failure."""
    assert conn.config_model is not None
    try:
        return conn.config_model.model_validate(data)
    except ValidationError as e:
        secret_names = set(_top_level_secrets(conn.config_model))
        errors = []
        for err in e.errors():
            field = "config" + ("." + loc_to_field(err["loc"]) if err["loc"] else "")
            top = str(err["loc"][0]) if err["loc"] else ""
            # Echo only top-level, non-secret values: a nested secret need not have a telling name.
            show = err["type"] != "missing" and len(err["loc"]) == 1 and top not in secret_names
            errors.append(
                FieldError(
                    field=field,
                    message=str(err["msg"]),
                    # safe_value hides everything under `config`; the type of a bad value is still useful.
                    value=safe_value(field.removeprefix("config."), err.get("input")) if show else None,
                )
            )
        shown = "; ".join(f"{x.field}: {x.message}" for x in errors[:3])
        raise Problem(422, "validation-error", f"connector {conn.name!r}: {shown}", errors=errors) from None


def _walk_seal(py: Any, js: Any, path: str, box: SecretBox, ctx: str) -> Any:
    if isinstance(py, SecretStr):
        return {ENCRYPTED: box.encrypt(py.get_secret_value(), context=f"{ctx}:{path}")}
    if isinstance(py, dict) and isinstance(js, dict):
        return {k: _walk_seal(py[k], js[k], f"{path}.{k}" if path else str(k), box, ctx) for k in js}
    if isinstance(py, list | tuple) and isinstance(js, list):
        return [
            _walk_seal(p, j, f"{path}[{i}]", box, ctx) for i, (p, j) in enumerate(zip(py, js, strict=True))
        ]
    return js


def seal(cfg: ConnectorConfig, box: SecretBox, connection_id: uuid.UUID) -> dict[str, Any]:
    """The JSON to store: the fields that were set, with every secret encrypted."""
    py = cfg.model_dump(mode="python", by_alias=True, exclude_unset=True)
    js = cfg.model_dump(mode="json", by_alias=True, exclude_unset=True)
    out = _walk_seal(py, js, "", box, f"connection:{connection_id}")
    assert isinstance(out, dict)
    return out


def _walk_unseal(node: Any, path: str, box: SecretBox, ctx: str) -> Any:
    if isinstance(node, dict):
        if set(node) == {ENCRYPTED}:
            return box.decrypt(node[ENCRYPTED], context=f"{ctx}:{path}")
        return {k: _walk_unseal(v, f"{path}.{k}" if path else str(k), box, ctx) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk_unseal(v, f"{path}[{i}]", box, ctx) for i, v in enumerate(node)]
    return node


def unseal(stored: dict[str, Any], box: SecretBox, connection_id: uuid.UUID) -> dict[str, Any]:
    """The plaintext config mapping (for the connector only; never return or log it)."""
    out = _walk_unseal(stored, "", box, f"connection:{connection_id}")
    assert isinstance(out, dict)
    return out


def _walk_public(node: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {ENCRYPTED}:
            return {"set": True}
        return {k: _walk_public(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk_public(v) for v in node]
    return node


def public_config(stored: dict[str, Any], model: type[ConnectorConfig] | None) -> dict[str, Any]:
    """What responses show: secrets as ``{"set": true}``, unset top-level secrets as ``{"set": false}``."""
    out = _walk_public(stored)
    assert isinstance(out, dict)
    if model is not None:
        for key in _top_level_secrets(model):
            if out.get(key) is None:
                out[key] = {"set": False}
    return out


def apply_patch(plain: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``plain`` at the top level: null removes a key; ``{"set": true}`` (what
    responses show for a secret) keeps the stored value."""
    out = dict(plain)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif value == _KEEP and key in out:
            continue
        else:
            out[key] = value
    return out


def secret_values(cfg: ConnectorConfig) -> list[str]:
    """Every secret value in ``cfg``, plus the password inside URL-shaped ones, for redaction."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, SecretStr):
            value = node.get_secret_value()
            found.append(value)
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.extend({password, unquote(password)})
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v)

    walk(cfg.model_dump(mode="python"))
    return [v for v in found if len(v) >= 3]


_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def redact(message: str, secrets: list[str]) -> str:
    """``message`` with the known secret values and any ``scheme://user:password@`` password masked."""
    for value in sorted(secrets, key=len, reverse=True):
        message = message.replace(value, "***")
    return _URL_PASSWORD.sub(r"\g<scheme>:***@", message)
