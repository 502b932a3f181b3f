"""What the sliced evaluator sends Cedar: only the context attributes a part's policies read, and
only Cedar handles parsed before the first request (after warm()).

The differential test covers random policy sets; these pin down the edge cases by hand: a policy
reading the context as a whole, ``context["x"]``, attributes that are absent (Cedar's error must
be the same with and without slicing), and principal- and resource-pinned policies of one
workspace grouped together.
"""

from __future__ import annotations

import pytest
from policy_support import NOW, req

import openfuse_policy.evaluator as evaluator
from openfuse_policy.decision import Context, Request
from openfuse_policy.entities import Entity, EntityRef, EntityStore
from openfuse_policy.evaluator import Authorizer, context_reads
from openfuse_policy.policy import PolicySet
from openfuse_policy.tiers import community_policies

POLICIES = PolicySet.parse(
    """
@id("no-context")
permit (principal in Workspace::"acme", action == Action::"pipeline:read", resource in Workspace::"acme")
when { principal.team == "analytics" };

@id("reads-now")
forbid (principal in Workspace::"acme", action == Action::"pipeline:run", resource in Workspace::"acme")
unless { context.now.toTime() >= duration("6h") };

@id("reads-ip-guarded")
permit (principal, action == Action::"pipeline:run", resource is Pipeline in Workspace::"acme")
when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };

@id("reads-workspace")
permit (principal, action == Action::"connection:read", resource)
when { context has workspace && context.workspace == principal.workspace };

@id("reads-owner")
permit (principal, action == Action::"pipeline:read", resource is Pipeline)
when { resource.owner.team == principal.team && context.now > datetime("2025-01-01") };

@id("reads-by-index")
permit (principal == Principal::"ann", action == Action::"pipeline:read", resource)
when { context["license_features"].contains("abac") };

@id("reads-whole-context")
forbid (principal, action == Action::"pipeline:read", resource)
when { (if principal.team == "data" then context else context).license_features.isEmpty() };
""",
    source="context.cedar",
)


def test_context_reads_names_the_attributes_a_policy_reads() -> None:
    reads = {p.id: context_reads(p) for p in POLICIES}
    assert reads == {
        "no-context": frozenset(),
        "reads-now": {"now"},
        "reads-ip-guarded": {"source_ip"},
        "reads-workspace": {"workspace"},
        "reads-owner": {"now"},
        "reads-by-index": {"license_features"},
        "reads-whole-context": None,  # `context` as a value: the part gets all of it
    }


CONTEXTS = [
    Context(now=NOW, license_features=frozenset({"abac"}), source_ip="10.0.0.1", workspace="acme"),
    Context(now=NOW.replace(hour=3), license_features=frozenset(), source_ip="192.168.0.7"),
    Context(now=NOW.replace(hour=5), license_features=frozenset({"masking"}), source_ip=None, workspace=None),
]
REQUESTS = [
    ("ann", "pipeline:read", 'Pipeline::"orders"'),
    ("ed", "pipeline:read", 'Pipeline::"orders"'),
    ("ada", "pipeline:run", 'Pipeline::"orders"'),
    ("gus", "pipeline:run", 'Pipeline::"gx-orders"'),
    ("ann", "connection:read", 'Connection::"pg"'),
    ("gus", "connection:read", 'Connection::"pg"'),
    ("ann", "pipeline:read", 'Pipeline::"not-in-the-store"'),  # resource.owner errors
]


@pytest.mark.parametrize("with_community", [False, True])
def test_sliced_decisions_with_partial_contexts_equal_unsliced(
    world: EntityStore, with_community: bool
) -> None:
    policies = community_policies() + POLICIES if with_community else POLICIES
    sliced, unsliced = Authorizer(policies).warm(), Authorizer(policies, slicing=False)
    requests = [req(p, a, r, c) for p, a, r in REQUESTS for c in CONTEXTS]
    got, want = sliced.decide_batch(requests, world), unsliced.decide_batch(requests, world)
    for request, a, b in zip(requests, got, want, strict=True):
        assert (a.allowed, a.determining, a.errors, a.obligations) == (
            b.allowed,
            b.determining,
            b.errors,
            b.obligations,
        ), request
        assert a.considered < b.considered
    # The comparison covers evaluation errors and every kind of outcome.
    assert any("reads-owner" in e for d in got for e in d.errors)
    reasons = {d.reason for d in got}
    assert reasons == ({"permit", "forbid"} if with_community else {"permit", "forbid", "default-deny"})
    # One at a time (the single-request path) agrees with the batch.
    assert [sliced.decide(r, world).determining for r in requests] == [d.determining for d in got]


def test_principal_and_resource_pins_of_one_workspace_are_evaluated_together(world: EntityStore) -> None:
    ps = PolicySet.parse(
        '@id("members")\npermit (principal in Workspace::"acme", action == Action::"pipeline:read", resource);\n'
        '@id("acme-pipes")\nforbid (principal, action, resource in Workspace::"acme") when { principal.team == "ops" };\n'
        '@id("other")\npermit (principal in Workspace::"globex", action == Action::"pipeline:read", resource);\n'
    )
    az = Authorizer(ps)
    assert set(az.slice_ids(req("ann", "pipeline:read", 'Pipeline::"orders"'), world)) == {
        "members",
        "acme-pipes",
    }
    # A globex principal on an acme pipeline: the acme group is needed for its resource pin only.
    assert set(az.slice_ids(req("gus", "pipeline:read", 'Pipeline::"orders"'), world)) == {
        "members",
        "acme-pipes",
        "other",
    }
    assert az.decide(req("ann", "pipeline:read", 'Pipeline::"orders"'), world).determining == ("members",)


def test_warm_parses_every_part_so_no_request_does(
    world: EntityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    az = Authorizer(community_policies() + POLICIES).warm()

    def refuse(policies: object) -> None:
        raise AssertionError("a Cedar policy set was parsed while deciding")

    monkeypatch.setattr(evaluator, "cedar_handle", refuse)
    decisions = az.decide_batch([req(p, a, r, c) for p, a, r in REQUESTS for c in CONTEXTS], world)
    assert all(d.considered > 0 for d in decisions)
    assert any(d.allowed for d in decisions)


def test_carried_entities_decide_as_from_the_store_and_malformed_ones_are_refused(world: EntityStore) -> None:
    az = Authorizer(community_policies() + POLICIES).warm()
    ann, orders = world.get(EntityRef("Principal", "ann")), world.get(EntityRef("Pipeline", "orders"))
    acme = world.get(EntityRef("Workspace", "acme"))
    assert ann is not None and orders is not None and acme is not None
    ed = world.get(EntityRef("Principal", "ed"))  # the pipeline's owner: read by `reads-owner`
    assert ed is not None
    for c in CONTEXTS:
        stored = az.decide(req("ann", "pipeline:read", 'Pipeline::"orders"', c), world)
        carried = az.decide(Request(ann, "pipeline:read", orders, c, entities=(acme, ed)))
        assert (carried.allowed, carried.determining, carried.errors) == (
            stored.allowed,
            stored.determining,
            stored.errors,
        )
    # An entity built by hand with a wrongly typed attribute (team is a String in the model):
    # Cedar's check of the carried entities still refuses it.
    bad = Entity.from_encoded(
        EntityRef("Principal", "mallory"),
        {"workspace": "acme", "team": 7, "roles": [], "region": "eu", "clearance": []},
        {
            "workspace": {"__entity": {"type": "Workspace", "id": "acme"}},
            "team": 7,
            "roles": [],
            "region": "eu",
            "clearance": [],
        },
        (EntityRef("Workspace", "acme"),),
    )
    d = az.decide(Request(bad, "pipeline:read", orders, CONTEXTS[0], entities=(acme, ed)))
    assert not d.allowed and d.considered == 0
    assert any("Cedar refused the entities" in e for e in d.errors), d.errors
