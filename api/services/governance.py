"""Governance: the license and its feature flags, the workspace's custom policies, and explain.

Custom policies are Cedar text, stored as versions (``policy_version``): every change adds a
version, the newest is in force, beside the built-in community policies. A write is validated
against the OpenFuse schema first; an invalid text is refused with Cedar's diagnostics (line,
policy id, message) and stores nothing. Custom permits need the license feature ``abac`` and
obligations need ``masking`` (``403 feature-not-licensed`` otherwise).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, func, select

from api.auth.policy import PolicyAuthorizer, cedar_action
from api.errors import FieldError, Problem
from api.models.policy import (
    FeaturesPublic,
    LicensePublic,
    PolicyDiagnostic,
    PolicyExplainRequest,
    PolicyExplanation,
    PolicyUpdate,
    PolicyVersion,
    PolicyVersionPage,
    PolicyVersionPublic,
)
from api.pagination import decode_cursor, encode_cursor
from api.services.base import Ctx, check_limit, operation

__all__ = [
    "explain_decision",
    "get_features",
    "get_license",
    "get_policies",
    "list_policy_versions",
    "update_policies",
]


def _license(ctx: Ctx) -> Any:
    return ctx.state.license.state()


@operation("license:read")
def get_license(ctx: Ctx) -> LicensePublic:
    """The installed license: edition, features, validity, and why it is community if it is."""
    return LicensePublic.model_validate(_license(ctx).to_dict())


@operation("license:read")
def get_features(ctx: Ctx) -> FeaturesPublic:
    """Feature flags: every known feature and whether the license grants it."""
    from openfuse_policy import FEATURES, features_for

    state = _license(ctx)
    return FeaturesPublic(
        edition=state.edition,
        features=features_for(state),
        descriptions={name: f.description for name, f in FEATURES.items()},
    )


def _public(ctx: Ctx, row: PolicyVersion | None) -> PolicyVersionPublic:
    """A stored version (or "none yet" for None) as the API shows it. ``active``: custom policies
    are in force only under the license feature ``abac`` (an empty set trivially is)."""
    from openfuse_policy import community_policies
    from openfuse_policy.tiers import ABAC

    ids = list(row.policy_ids) if row is not None else []
    return PolicyVersionPublic(
        version=row.version if row is not None else 0,
        text=row.text if row is not None else "",
        policy_ids=ids,
        comment=row.comment if row is not None else "",
        created_by=row.created_by if row is not None else None,
        created_at=row.created_at if row is not None else None,
        active=not ids or ABAC in _license(ctx).features,
        builtin_policy_ids=list(community_policies().ids),
    )


def _current(ctx: Ctx) -> PolicyVersion | None:
    return ctx.session.exec(
        select(PolicyVersion)
        .where(PolicyVersion.workspace_id == ctx.workspace_id)
        .order_by(col(PolicyVersion.version).desc())
        .limit(1)
    ).first()


@operation("policy:read")
def get_policies(ctx: Ctx) -> PolicyVersionPublic:
    """The workspace's custom policies in force (the newest version), and the built-in ones."""
    return _public(ctx, _current(ctx))


@operation("policy:read")
def list_policy_versions(ctx: Ctx, *, cursor: str | None = None, limit: int = 50) -> PolicyVersionPage:
    """Every stored version of the workspace's custom policies, newest first."""
    check_limit(limit)
    stmt = select(PolicyVersion).where(PolicyVersion.workspace_id == ctx.workspace_id)
    if cursor is not None:
        (last,) = decode_cursor(cursor, "policy_versions", [int])
        stmt = stmt.where(col(PolicyVersion.version) < last)
    rows = ctx.session.exec(stmt.order_by(col(PolicyVersion.version).desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return PolicyVersionPage(
        items=[_public(ctx, r) for r in rows],
        next_cursor=encode_cursor("policy_versions", [rows[-1].version]) if more else None,
    )


def _diagnostics_problem(e: Any) -> Problem:
    diags = [
        PolicyDiagnostic(message=d.message, policy_id=d.policy_id, line=d.line, kind=d.kind)
        for d in e.diagnostics
    ]
    n = len(diags)
    return Problem(
        422,
        "policy-invalid",
        f"{n} problem{'s' if n != 1 else ''} in the policies; nothing was stored",
        title="Invalid policies",
        errors=[
            FieldError(field=f"text:{d.line}" if d.line else "text", message=f"[{d.kind}] {d.message}")
            for d in diags
        ],
        extra={"diagnostics": [d.model_dump() for d in diags]},
    )


@operation("policy:update")
def update_policies(ctx: Ctx, body: PolicyUpdate) -> PolicyVersionPublic:
    """Store a new version of the workspace's custom policies (validated; the whole set)."""
    from openfuse_policy import FeatureNotLicensedError, PolicySet, PolicyValidationError
    from openfuse_policy.tiers import effective_policies

    try:
        parsed = PolicySet.parse(body.text, source="text")
        if len(parsed):
            effective_policies(_license(ctx), parsed)  # licensing, reserved ids
    except PolicyValidationError as e:
        raise _diagnostics_problem(e) from None
    except FeatureNotLicensedError as e:
        raise Problem(403, "feature-not-licensed", str(e), title="Not licensed") from None
    latest = ctx.session.exec(
        select(func.max(PolicyVersion.version)).where(PolicyVersion.workspace_id == ctx.workspace_id)
    ).first()
    row = PolicyVersion(
        workspace_id=ctx.workspace_id,
        version=(latest or 0) + 1,
        text=body.text,
        policy_ids=list(parsed.ids),
        comment=body.comment,
        created_by=ctx.principal.id,
    )
    ctx.session.add(row)
    ctx.guard.audit(
        ctx.session,
        resource_id=f"v{row.version}",
        detail={"version": row.version, "policies": list(parsed.ids)},
    )
    ctx.session.commit()  # two writers of one version: the unique key makes the second a 409
    ctx.session.refresh(row)
    ctx.exporter.governance_after_commit(ctx.session, ctx.workspace_id)  # for the sync steps
    return _public(ctx, row)


@operation("policy:explain")
def explain_decision(ctx: Ctx, body: PolicyExplainRequest) -> PolicyExplanation:
    """Why a request would be allowed or denied under the workspace's policies in force."""
    from openfuse_policy import OPENFUSE_SCHEMA, Context, Request, RequestError

    authorizer = ctx.state.authorizer
    if not isinstance(authorizer, PolicyAuthorizer):
        raise Problem(409, "conflict", "this API runs without the policy engine; nothing to explain")
    ws = str(ctx.workspace_id)
    try:
        p = dict(body.principal)
        pid = str(p.pop("id", "") or "")
        if not pid:
            raise RequestError("principal.id is required", field="principal.id", value=None)
        principal = OPENFUSE_SCHEMA.entity(
            "Principal",
            pid,
            **{"team": "", "roles": [], "region": "", "clearance": [], **p, "workspace": ws},
        )
        r = dict(body.resource)
        rtype, rid = str(r.pop("type", "") or ""), str(r.pop("id", "") or "")
        if rtype == "Workspace":
            resource = OPENFUSE_SCHEMA.entity("Workspace", ws)
        else:
            resource = OPENFUSE_SCHEMA.entity(rtype or "?", rid, **{**_defaults(rtype), **r, "workspace": ws})
        request = Request(
            principal,
            cedar_action(body.action),
            resource,
            Context(now=authorizer.now(), license_features=_license(ctx).features, workspace=ws),
            entities=(OPENFUSE_SCHEMA.entity("Workspace", ws),),
        )
    except RequestError as e:
        raise Problem.invalid(str(e.field or "body"), str(e), value=e.value) from None
    ex = authorizer.explain(ctx.principal, request)
    d = ex.decision
    if d.errors and not d.allowed and not d.determining and d.considered == 0:
        # The request itself did not fit (unknown action, wrong resource type): say which field.
        raise Problem.invalid("action", "; ".join(d.errors), value=body.action)
    return PolicyExplanation(
        allowed=d.allowed,
        reason=d.reason,
        determining=list(d.determining),
        obligations=[str(o) for o in d.obligations],
        errors=list(d.errors),
        considered=list(ex.considered),
        total=ex.total,
        decision_id=d.decision_id,
        text=ex.render(),
    )


def _defaults(rtype: str) -> dict[str, Any]:
    """Empty values for a resource's attributes the caller did not give."""
    defaults: dict[str, dict[str, Any]] = {
        "Connection": {"owner": "none", "connector": "", "region": "", "tags": []},
        "Pipeline": {"owner": "none", "tags": []},
        "Dataset": {"connection": "none", "region": "", "tags": [], "columns": [], "column_tags": []},
        "Stream": {"pipeline": "none", "connection": "none", "tags": [], "columns": [], "column_tags": []},
        "Run": {"pipeline": "none", "triggered_by": "none"},
        "Principal": {"team": "", "roles": [], "region": "", "clearance": []},
    }
    return defaults.get(rtype, {})
