"""``/license``, ``/features``, ``/policies``: the license, its feature flags and the workspace's
custom Cedar policies (versioned, validated on every write), and ``/policies/explain``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.policy import PolicyExplainRequest, PolicyUpdate, PolicyVersionPublic
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import governance as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(tags=["governance"])


@router.get("/license", response_model=svc.LicensePublic)
def get_license(
    guard: Annotated[Guard, Authorize(svc.get_license)], state: StateDep, session: SessionDep
) -> Response:
    """The installed license: edition, features, validity, and why it is community if it is."""
    return model_response(svc.get_license(Ctx(state, session, guard)))


@router.get("/features", response_model=svc.FeaturesPublic)
def get_features(
    guard: Annotated[Guard, Authorize(svc.get_features)], state: StateDep, session: SessionDep
) -> Response:
    """Feature flags: every known feature and whether the license grants it."""
    return model_response(svc.get_features(Ctx(state, session, guard)))


@router.get("/policies", response_model=PolicyVersionPublic)
def get_policies(
    guard: Annotated[Guard, Authorize(svc.get_policies)], state: StateDep, session: SessionDep
) -> Response:
    """The workspace's custom policies in force (the newest version), and the built-in ones."""
    return model_response(svc.get_policies(Ctx(state, session, guard)))


@router.put("/policies", response_model=PolicyVersionPublic)
def update_policies(
    body: PolicyUpdate,
    guard: Annotated[Guard, Authorize(svc.update_policies)],
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Store a new version of the workspace's custom policies (validated; replaces the whole set).

    An invalid text is `422 policy-invalid` with Cedar's diagnostics (`diagnostics`: line, policy id,
    kind, message); custom permits without the license feature `abac` are `403 feature-not-licensed`.
    """
    return model_response(svc.update_policies(Ctx(state, session, guard), body))


@router.get("/policies/versions", response_model=svc.PolicyVersionPage)
def list_policy_versions(
    guard: Annotated[Guard, Authorize(svc.list_policy_versions)],
    state: StateDep,
    session: SessionDep,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Response:
    """Every stored version of the workspace's custom policies, newest first."""
    return model_response(svc.list_policy_versions(Ctx(state, session, guard), cursor=cursor, limit=limit))


@router.post("/policies/explain", response_model=svc.PolicyExplanation)
def explain_decision(
    body: PolicyExplainRequest,
    guard: Annotated[Guard, Authorize(svc.explain_decision)],
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Why a request would be allowed or denied under the workspace's policies in force."""
    return model_response(svc.explain_decision(Ctx(state, session, guard), body))
