"""Properties of authorization, checked with hypothesis.

* Cedar's combining rule, through our evaluator: a request is allowed exactly when some permit is
  satisfied and no forbid is; the determining policies are the satisfied forbids if any, else the
  satisfied permits. ("Satisfied" is measured independently: the same set with every policy
  turned into a permit reports all satisfied policies as its reasons.) So a forbid always wins,
  and with no satisfied permit the answer is deny.
* An unconditional forbid denies whatever else the set says.
* Under the built-in policies, nobody is ever allowed to act on another workspace's resources,
  whatever their roles, the context, or an enterprise policy that permits everything.
"""

from __future__ import annotations

import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_support import (
    CLEARANCE,
    NOW,
    REGIONS,
    ROLES,
    TEAMS,
    random_contexts,
    random_policies,
    random_requests,
    universe,
)

from openfuse_policy.decision import Context, Request
from openfuse_policy.entities import Entity
from openfuse_policy.evaluator import Authorizer
from openfuse_policy.policy import PolicySet
from openfuse_policy.schema import ACTIONS
from openfuse_policy.schema import OPENFUSE_SCHEMA as S
from openfuse_policy.tiers import community_policies

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def all_permits(ps: PolicySet) -> PolicySet:
    """The same policies with every forbid turned into a permit (and obligations dropped)."""
    texts = []
    for p in ps:
        text = re.sub(r"@obligation\(\"[^\"]*\"\)\s*", "", p.text)
        texts.append(re.sub(r"(?m)^forbid\b", "permit", text))
    return PolicySet.parse("\n".join(texts))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n_policies=st.integers(1, 25))
def test_allowed_iff_a_permit_and_no_forbid_is_satisfied(seed: int, n_policies: int) -> None:
    rng = random.Random(seed)
    world = universe(rng, size=4)
    policies = PolicySet.parse(random_policies(rng, n_policies, world.ids))
    requests = random_requests(rng, 40, world, random_contexts(rng, 5))
    decisions = Authorizer(policies).decide_batch(requests, world.store)
    satisfied = Authorizer(all_permits(policies)).decide_batch(requests, world.store)
    for d, sat in zip(decisions, satisfied, strict=True):
        forbids = [pid for pid in sat.determining if policies[pid].effect == "forbid"]
        permits = [pid for pid in sat.determining if policies[pid].effect == "permit"]
        assert d.allowed == (bool(permits) and not forbids)
        assert list(d.determining) == (forbids or (permits if d.allowed else []))
        if not permits:
            assert not d.allowed  # no matching permit -> deny
        if forbids:
            assert not d.allowed and d.reason == "forbid"  # forbid always wins
        assert all(policies[pid].effect == ("permit" if d.allowed else "forbid") for pid in d.determining)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_an_unconditional_forbid_wins_over_any_set(seed: int) -> None:
    rng = random.Random(seed)
    world = universe(rng, size=4)
    action = rng.choice(sorted(ACTIONS))
    text = random_policies(rng, 15, world.ids) + "\npermit (principal, action, resource);"
    text += f'\n@id("stop")\nforbid (principal, action == Action::"{action}", resource);'
    requests = [r for r in random_requests(rng, 200, world, random_contexts(rng, 5)) if r.action == action]
    for d in Authorizer(PolicySet.parse(text)).decide_batch(requests, world.store):
        assert not d.allowed and "stop" in d.determining


ids = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=8)


@st.composite
def cross_workspace_requests(draw: st.DrawFn) -> Request:
    mine, theirs = draw(
        st.lists(st.sampled_from(["w1", "w2", "w3", "w4"]), min_size=2, max_size=2, unique=True)
    )
    principal = S.entity(
        "Principal",
        draw(ids),
        workspace=mine,
        team=draw(st.sampled_from(TEAMS)),
        roles=draw(st.sets(st.sampled_from(ROLES))),
        region=draw(st.sampled_from(REGIONS)),
        clearance=draw(st.sets(st.sampled_from(CLEARANCE))),
    )
    action = ACTIONS[draw(st.sampled_from(sorted(ACTIONS)))]
    rtype = draw(st.sampled_from(action.resource_types))
    owner = draw(st.sampled_from([principal.uid.id, "someone"]))
    attrs = {
        "Workspace": {},
        "Connection": {"owner": owner, "connector": "postgres", "region": "eu", "tags": []},
        "Pipeline": {"owner": owner, "tags": ["prod"]},
        "Dataset": {"connection": "c", "region": "eu", "tags": [], "columns": ["a"], "column_tags": ["pii"]},
        "Stream": {"pipeline": "p", "connection": "c", "tags": [], "columns": ["a"], "column_tags": []},
        "Run": {"pipeline": "p", "triggered_by": principal.uid.id},
        "Principal": {"team": "data", "roles": ["admin"], "region": "eu", "clearance": []},
    }[rtype]
    if rtype == "Workspace":
        resource = S.entity("Workspace", theirs)
    else:
        # "r-" keeps a Principal resource from sharing the principal's uid (it lives elsewhere).
        resource = S.entity(rtype, "r-" + draw(ids), workspace=theirs, **attrs)
    context = Context(
        now=NOW,
        license_features=frozenset(draw(st.sets(st.sampled_from(["abac", "masking", "audit_export"])))),
        source_ip=draw(st.sampled_from([None, "10.0.0.1"])),
        # The URL may name the principal's own workspace: isolation must still hold.
        workspace=draw(st.sampled_from([None, mine, theirs])),
    )
    return Request(principal, action.name, resource, context)


PERMIT_ALL = PolicySet.parse('@id("custom.everything")\npermit (principal, action, resource);')
COMMUNITY = Authorizer(community_policies())
COMMUNITY_PLUS_PERMIT_ALL = Authorizer(community_policies() + PERMIT_ALL)


@settings(max_examples=300, deadline=None)
@given(request=cross_workspace_requests())
def test_no_cross_workspace_allow_under_the_community_policies(request: Request) -> None:
    for az in (COMMUNITY, COMMUNITY_PLUS_PERMIT_ALL):
        d = az.decide(request)
        assert not d.allowed, az.explain(request).render()
        assert "community.workspace-isolation" in d.determining


@settings(max_examples=100, deadline=None)
@given(request=cross_workspace_requests())
def test_the_same_request_inside_the_workspace_is_decided_by_roles(request: Request) -> None:
    # Move the resource into the principal's workspace: now only roles (and the license) decide.
    p, r = request.principal, request.resource
    assert isinstance(p, Entity) and isinstance(r, Entity)
    mine = p.attrs["workspace"]
    if r.uid.type == "Workspace":
        moved = S.entity("Workspace", mine)
    else:
        moved = S.entity(r.uid.type, r.uid.id, **{**r.attrs, "workspace": mine})
    ctx = Context(now=NOW, license_features=request.context.license_features, source_ip=None, workspace=mine)
    d = COMMUNITY.decide(Request(p, request.action, moved, ctx))
    roles = set(p.attrs["roles"])
    group = ACTIONS[request.action].groups[0]
    granted = {"read": {"viewer", "editor", "admin"}, "write": {"editor", "admin"}, "manage": {"admin"}}[
        group
    ]
    licensed = request.action != "audit:export" or "audit_export" in ctx.license_features
    assert d.allowed == (bool(roles & granted) and licensed)
