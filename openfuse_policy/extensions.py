"""Extensions registered by other packages under the entry-point group ``openfuse.policy``.

Two kinds, told apart by what they can do (each entry point names a class, instantiated without
arguments, or an instance):

* an **attribute provider** - principal attributes from elsewhere (an HR directory, an IdP)::

      class HrDirectory:
          name = "hr"
          def principal_attributes(self, principal: str) -> Mapping[str, Any] | None:
              return {"team": ..., "roles": [...], "region": ..., "clearance": [...]}  # None: unknown

* a **policy store** - Cedar policies kept elsewhere (a git repository, a vault)::

      class GitPolicies:
          name = "git"
          def policies(self) -> str: ...   # Cedar text

A private package declares them in its ``pyproject.toml``::

    [project.entry-points."openfuse.policy"]
    hr = "acme_governance:HrDirectory"

The data-plane gate asks the providers for an owner ``principals.yaml`` does not list (in entry
point name order, first answer wins) and adds every store's policies to the folder's. An
extension that fails to load is reported in :attr:`Extensions.broken`, never fatal to the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

__all__ = ["ENTRY_POINT_GROUP", "AttributeProvider", "Extensions", "PolicyStore", "load_extensions"]

ENTRY_POINT_GROUP = "openfuse.policy"


@runtime_checkable
class AttributeProvider(Protocol):
    def principal_attributes(self, principal: str) -> Mapping[str, Any] | None: ...


@runtime_checkable
class PolicyStore(Protocol):
    def policies(self) -> str: ...


@dataclass
class Extensions:
    attribute_providers: dict[str, AttributeProvider] = field(default_factory=dict)
    policy_stores: dict[str, PolicyStore] = field(default_factory=dict)
    #: entry point name -> why it could not be used
    broken: dict[str, str] = field(default_factory=dict)

    def principal_attributes(self, principal: str) -> tuple[str, Mapping[str, Any]] | None:
        """``(provider name, attributes)`` from the first provider that knows ``principal``."""
        for name, provider in self.attribute_providers.items():
            got = provider.principal_attributes(principal)
            if got is not None:
                return name, got
        return None


def load_extensions(group: str = ENTRY_POINT_GROUP) -> Extensions:
    """Every extension installed under ``group``, sorted by entry point name."""
    out = Extensions()
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = ep.load()
            if isinstance(obj, type):
                obj = obj()
        except Exception as e:
            out.broken[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"
            continue
        kinds = 0
        if isinstance(obj, AttributeProvider):
            out.attribute_providers[ep.name] = obj
            kinds += 1
        if isinstance(obj, PolicyStore):
            out.policy_stores[ep.name] = obj
            kinds += 1
        if not kinds:
            out.broken[ep.name] = (
                f"{ep.value}: neither an attribute provider (principal_attributes) nor a policy store (policies)"
            )
    return out
