"""Administration without the HTTP API: API keys for bootstrapping (``openfuse admin create-key``)."""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy import Engine, inspect
from sqlmodel import Session, select

from api import audit
from api.auth.apikeys import new_key
from api.errors import ApiError
from api.models.api_key import ApiKey
from api.models.audit_log import Outcome
from api.models.principal import Principal
from api.models.workspace import Workspace

__all__ = ["LIST_ATTRIBUTES", "NotMigratedError", "create_api_key", "parse_attributes"]

#: Attributes that are always lists, even with one value (``--attr roles=admin``).
LIST_ATTRIBUTES = frozenset({"roles", "groups"})


class NotMigratedError(ApiError):
    """The metadata DB has no tables yet."""

    def __init__(self) -> None:
        super().__init__("the metadata database is not initialised; run `openfuse admin migrate` first")


def parse_attributes(pairs: list[str]) -> dict[str, Any]:
    """``["team=data", "roles=admin,editor"]`` -> ``{"team": "data", "roles": ["admin", "editor"]}``.

    A value with commas becomes a list; ``roles`` and ``groups`` are lists always.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"attribute {pair!r} must look like key=value")
        if "," in value or key in LIST_ATTRIBUTES:
            out[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            out[key] = value.strip()
    return out


def create_api_key(engine: Engine, *, workspace: str, name: str, attributes: dict[str, Any]) -> str:
    """Make a key for principal ``name`` of ``workspace`` (both created when missing; given
    attributes replace those keys). Returns the key - the only time it exists in clear."""
    if not inspect(engine).has_table("api_key"):
        raise NotMigratedError()
    with Session(engine) as session:
        ws = session.exec(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is None:
            ws = Workspace(name=workspace)
            session.add(ws)
            session.flush()
        principal = session.exec(
            select(Principal).where(Principal.workspace_id == ws.id, Principal.name == name)
        ).first()
        if principal is None:
            # A new principal without roles is the workspace's admin (the bootstrap key); pass
            # `--attr roles=viewer` (or editor) for less.
            attributes = {"roles": ["admin"], **attributes}
            principal = Principal(workspace_id=ws.id, name=name, attributes=attributes)
            session.add(principal)
            session.flush()
        elif attributes:
            principal.attributes = {**principal.attributes, **attributes}
            session.add(principal)
        key = new_key()
        row = ApiKey(principal_id=principal.id, prefix=key.prefix, secret_hash=key.secret_hash)
        session.add(row)
        audit.record(
            session,
            workspace_id=ws.id,
            actor_id=None,
            actor_name=f"cli:{_os_user()}",
            action="api_key:create",
            resource_type="api_key",
            resource_id=row.id,
            outcome=Outcome.SUCCESS,
            detail={"principal": name, "prefix": key.prefix, "attributes": sorted(attributes)},
        )
        session.commit()
    return key.token


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"
