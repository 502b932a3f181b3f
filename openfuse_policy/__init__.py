"""OpenFuse governance: ABAC policies on Cedar, decisions with reasons and obligations, licenses.

Names are re-exported lazily: ``import openfuse_policy`` loads nothing (no Cedar, no
cryptography); each name imports its module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openfuse_policy.decision import Context, Decision, Request
    from openfuse_policy.decision_log import DecisionSink, MemoryDecisionSink, decision_record
    from openfuse_policy.entities import Entity, EntityRef, EntityStore
    from openfuse_policy.errors import (
        Diagnostic,
        FeatureNotLicensedError,
        LicenseError,
        PolicyError,
        PolicyTestError,
        PolicyValidationError,
        RequestError,
    )
    from openfuse_policy.evaluator import Authorizer, Explanation
    from openfuse_policy.license import (
        LicenseState,
        features_for,
        issue_license,
        load_license,
        load_public_keys,
        verify_license,
    )
    from openfuse_policy.obligation import Obligation, resolve_columns
    from openfuse_policy.policy import Policy, PolicySet
    from openfuse_policy.schema import ACTIONS, OPENFUSE_SCHEMA, GovernanceSchema, default_schema
    from openfuse_policy.testing import PolicyTestReport, load_suites, run_policy_tests
    from openfuse_policy.tiers import FEATURES, community_policies, effective_policies, require_feature

_EXPORTS = {
    "ACTIONS": "schema",
    "Authorizer": "evaluator",
    "Context": "decision",
    "Decision": "decision",
    "DecisionSink": "decision_log",
    "Diagnostic": "errors",
    "Entity": "entities",
    "EntityRef": "entities",
    "EntityStore": "entities",
    "Explanation": "evaluator",
    "FEATURES": "tiers",
    "FeatureNotLicensedError": "errors",
    "GovernanceSchema": "schema",
    "LicenseError": "errors",
    "LicenseState": "license",
    "MemoryDecisionSink": "decision_log",
    "OPENFUSE_SCHEMA": "schema",
    "Obligation": "obligation",
    "Policy": "policy",
    "PolicyError": "errors",
    "PolicySet": "policy",
    "PolicyTestError": "errors",
    "PolicyTestReport": "testing",
    "PolicyValidationError": "errors",
    "Request": "decision",
    "RequestError": "errors",
    "community_policies": "tiers",
    "decision_record": "decision_log",
    "default_schema": "schema",
    "effective_policies": "tiers",
    "features_for": "license",
    "issue_license": "license",
    "load_license": "license",
    "load_public_keys": "license",
    "load_suites": "testing",
    "require_feature": "tiers",
    "resolve_columns": "obligation",
    "run_policy_tests": "testing",
    "verify_license": "license",
}

__all__ = [
    "ACTIONS",
    "FEATURES",
    "OPENFUSE_SCHEMA",
    "Authorizer",
    "Context",
    "Decision",
    "DecisionSink",
    "Diagnostic",
    "Entity",
    "EntityRef",
    "EntityStore",
    "Explanation",
    "FeatureNotLicensedError",
    "GovernanceSchema",
    "LicenseError",
    "LicenseState",
    "MemoryDecisionSink",
    "Obligation",
    "Policy",
    "PolicyError",
    "PolicySet",
    "PolicyTestError",
    "PolicyTestReport",
    "PolicyValidationError",
    "Request",
    "RequestError",
    "community_policies",
    "decision_record",
    "default_schema",
    "effective_policies",
    "features_for",
    "issue_license",
    "load_license",
    "load_public_keys",
    "load_suites",
    "require_feature",
    "resolve_columns",
    "run_policy_tests",
    "verify_license",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'openfuse_policy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"openfuse_policy.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
