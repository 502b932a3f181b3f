"""Editions and the features a license gates.

============== ===========================================================================
community      built-in policies only (``policies/community.cedar``): workspace isolation
               and the roles ``viewer`` (read), ``editor`` (read, write), ``admin`` (read,
               write, manage). No license needed.
enterprise     whatever features the license lists:

               ``abac``          custom Cedar policies beside the built-in ones
                                 (:func:`effective_policies` refuses them without it)
               ``masking``       data-plane obligations (``@obligation("mask:pii")``); custom
                                 policies carrying obligations are refused without it
               ``audit_export``  audit log export (``audit:export``; the built-in policy
                                 ``community.license.audit-export`` forbids it otherwise)

               Enterprise connectors declare ``required_feature = "<feature>"`` on the
               connector class; :func:`require_connector_feature` checks it.
============== ===========================================================================

The built-in policies are evaluated in every edition and use the reserved id prefix
``community.``; the isolation forbid therefore holds whatever custom policies permit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from openfuse_policy.errors import Diagnostic, FeatureNotLicensedError, PolicyValidationError
from openfuse_policy.schema import OPENFUSE_SCHEMA, GovernanceSchema

if TYPE_CHECKING:
    from openfuse_policy.license import LicenseState
    from openfuse_policy.policy import PolicySet

__all__ = [
    "ABAC",
    "AUDIT_EXPORT",
    "COMMUNITY",
    "COMMUNITY_POLICY_PREFIX",
    "ENTERPRISE",
    "FEATURES",
    "MASKING",
    "ROLES",
    "FeatureDef",
    "community_policies",
    "effective_policies",
    "enforceable_policies",
    "require_connector_feature",
    "require_feature",
]

COMMUNITY: Final = "community"
ENTERPRISE: Final = "enterprise"
ABAC: Final = "abac"
MASKING: Final = "masking"
AUDIT_EXPORT: Final = "audit_export"
COMMUNITY_POLICY_PREFIX: Final = "community."


@dataclass(frozen=True, slots=True)
class FeatureDef:
    name: str
    edition: str
    description: str


FEATURES: Mapping[str, FeatureDef] = {
    f.name: f
    for f in (
        FeatureDef(ABAC, ENTERPRISE, "custom ABAC policies (Cedar) beside the built-in roles"),
        FeatureDef(MASKING, ENTERPRISE, "data-plane masking, hashing and dropping of tagged columns"),
        FeatureDef(AUDIT_EXPORT, ENTERPRISE, "export of the audit log"),
    )
}

#: Built-in role -> the action groups it is granted (see ``policies/community.cedar``).
ROLES: Mapping[str, tuple[str, ...]] = {
    "viewer": ("read",),
    "editor": ("read", "write"),
    "admin": ("read", "write", "manage"),
}


def role_actions(role: str, schema: GovernanceSchema = OPENFUSE_SCHEMA) -> tuple[str, ...]:
    """The actions a built-in role grants (inside the principal's own workspace)."""
    return tuple(a for g in ROLES[role] for a in schema.actions_in_group(g))


@cache
def _community_text() -> str:
    return resources.files("openfuse_policy").joinpath("policies/community.cedar").read_text(encoding="utf-8")


_COMMUNITY: dict[str, PolicySet] = {}


def community_policies(schema: GovernanceSchema | None = None) -> PolicySet:
    """The built-in policy set every edition evaluates (parsed once per schema)."""
    from openfuse_policy.policy import PolicySet

    schema = schema or OPENFUSE_SCHEMA
    got = _COMMUNITY.get(schema.fingerprint)
    if got is None:
        got = _COMMUNITY.setdefault(
            schema.fingerprint,
            PolicySet.parse(
                _community_text(), source="openfuse_policy/policies/community.cedar", schema=schema
            ),
        )
    return got


def _features(license: LicenseState | Iterable[str]) -> tuple[frozenset[str], str]:
    feats = getattr(license, "features", None)
    if feats is not None:
        return frozenset(feats), str(getattr(license, "edition", ENTERPRISE))
    fs = frozenset(license)  # type: ignore[arg-type]
    return fs, ENTERPRISE if fs else COMMUNITY


def require_feature(license: LicenseState | Iterable[str], feature: str, *, what: str) -> None:
    """Raise :class:`FeatureNotLicensedError` unless the license grants ``feature``."""
    feats, edition = _features(license)
    if feature not in feats:
        raise FeatureNotLicensedError(feature, edition=edition, what=what)


def effective_policies(license: LicenseState | Iterable[str], custom: PolicySet | None = None) -> PolicySet:
    """The policies to enforce: the built-in set, plus ``custom`` when the license allows.

    Raises:
        FeatureNotLicensedError: custom policies without ``abac``, or obligations without ``masking``.
        PolicyValidationError: a custom policy uses the reserved ``community.`` id prefix.
    """
    schema = custom.schema if custom is not None else OPENFUSE_SCHEMA
    base = community_policies(schema)
    if custom is None or len(custom) == 0:
        return base
    require_feature(license, ABAC, what=f"custom policies ({len(custom)})")
    with_obligations = [p.id for p in custom if p.obligations]
    if with_obligations:
        require_feature(license, MASKING, what=f"obligations on policies {', '.join(with_obligations)}")
    reserved = [p for p in custom if p.id.startswith(COMMUNITY_POLICY_PREFIX)]
    if reserved:
        raise PolicyValidationError(
            [
                Diagnostic(
                    f"the id prefix {COMMUNITY_POLICY_PREFIX!r} is reserved for built-in policies",
                    policy_id=p.id,
                    source=p.source,
                    line=p.line,
                    kind="duplicate-id",
                )
                for p in reserved
            ]
        )
    return base + custom


def enforceable_policies(license: LicenseState | Iterable[str], custom: PolicySet | None = None) -> PolicySet:
    """The policies to enforce *now* for stored ``custom`` policies, whatever the license says.

    Unlike :func:`effective_policies` (which refuses, for a write), this never raises for a
    missing feature: without ``masking`` the policies carrying obligations are left out (they
    cannot be enforced as written, and leaving a permit out only denies more); without ``abac``
    only the custom *forbids* stay. A lapsed license can narrow access, never widen it.
    """
    feats, _ = _features(license)
    base = community_policies(custom.schema if custom is not None else None)
    if custom is None or len(custom) == 0:
        return base
    if MASKING not in feats:
        custom = custom.filter(lambda p: not p.obligations)
    if ABAC not in feats:
        forbids = custom.filter(lambda p: p.effect == "forbid")
        return base + forbids if len(forbids) else base
    return effective_policies(license, custom) if len(custom) else base


def require_connector_feature(connector: Any, license: LicenseState | Iterable[str]) -> None:
    """Raise unless the license grants the connector's ``required_feature`` (if it declares one)."""
    feature = getattr(connector, "required_feature", None)
    if feature:
        name = getattr(connector, "name", None) or getattr(connector, "__name__", type(connector).__name__)
        require_feature(license, str(feature), what=f"connector {name!r}")
