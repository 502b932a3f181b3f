"""The authorizer: default deny, forbid wins, obligations, explain, the decision log, tiers."""

from __future__ import annotations

import pytest
from policy_support import ctx_for, req

from openfuse_policy.decision import Context, Request
from openfuse_policy.decision_log import DecisionSink, MemoryDecisionSink
from openfuse_policy.entities import EntityRef, EntityStore
from openfuse_policy.errors import FeatureNotLicensedError, PolicyValidationError
from openfuse_policy.evaluator import Authorizer
from openfuse_policy.obligation import Obligation, resolve_columns
from openfuse_policy.policy import PolicySet
from openfuse_policy.schema import OPENFUSE_SCHEMA as S
from openfuse_policy.tiers import community_policies, effective_policies, require_connector_feature

CUSTOM = PolicySet.parse(
    """
@id("analysts-read-masked")
@obligation("mask:pii, drop:column:ssn")
permit (principal, action == Action::"dataset:read", resource is Dataset)
when { principal.team == "analytics" && resource.column_tags.contains("pii") };

@id("cleared-read-hashed")
@obligation("hash:email")
permit (principal, action == Action::"dataset:read", resource is Dataset)
when { principal.clearance.contains("pii") };

@id("no-reads-outside-the-region")
forbid (principal, action == Action::"dataset:read", resource is Dataset)
unless { resource.region == principal.region };

@id("office-network-only")
forbid (principal, action in Action::"write", resource)
unless { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };
""",
    source="custom.cedar",
)


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    return Authorizer(community_policies() + CUSTOM)


def test_default_deny_when_no_policy_permits(world: EntityStore, ctx: Context) -> None:
    d = Authorizer(PolicySet.parse("")).decide(req("ada", "pipeline:read", 'Pipeline::"orders"', ctx), world)
    assert not d.allowed and d.reason == "default-deny" and d.determining == () and d.errors == ()
    # A viewer may not delete: no permit applies, nothing forbids.
    d = Authorizer(community_policies()).decide(
        req("ann", "pipeline:delete", 'Pipeline::"orders"', ctx), world
    )
    assert not d.allowed and d.reason == "default-deny"


def test_forbid_overrides_permit(world: EntityStore, authorizer: Authorizer) -> None:
    # ed is an editor (community.role.editor permits) but calls from outside the office network.
    outside = Context(now=ctx_for().now, source_ip="203.0.113.9", license_features=frozenset({"abac"}))
    d = authorizer.decide(req("ed", "pipeline:run", 'Pipeline::"orders"', outside), world)
    assert not d.allowed and d.reason == "forbid" and d.determining == ("office-network-only",)
    d = authorizer.decide(req("ed", "pipeline:run", 'Pipeline::"orders"'), world)
    assert d.allowed and d.determining == ("community.role.editor",)


def test_obligations_come_from_the_determining_permits(world: EntityStore, authorizer: Authorizer) -> None:
    d = authorizer.decide(req("ann", "dataset:read", 'Dataset::"customers"'), world)
    assert d.allowed
    assert d.determining == ("community.role.viewer", "analysts-read-masked")
    assert d.obligations == (Obligation("mask", "pii"), Obligation("drop", "ssn", "column"))
    # ada (admin, cleared) reads through a different permit: her decision carries its obligation.
    d = authorizer.decide(req("ada", "dataset:read", 'Dataset::"customers"'), world)
    assert d.determining == ("community.role.viewer", "cleared-read-hashed")
    assert [str(o) for o in d.obligations] == ["hash:email"]
    plan = resolve_columns(d.obligations, {"id": [], "email": ["pii"], "ssn": ["pii"]})
    assert plan == {"email": "hash"}
    plan = resolve_columns(
        [Obligation("mask", "pii"), Obligation("drop", "ssn", "column")],
        {"id": [], "email": ["pii"], "ssn": ["pii"]},
    )
    assert plan == {"email": "mask", "ssn": "drop"}
    # ed (us) is out of the dataset's region: denied, and a deny carries no obligations.
    d = authorizer.decide(req("ed", "dataset:read", 'Dataset::"customers"'), world)
    assert not d.allowed and d.obligations == () and d.determining == ("no-reads-outside-the-region",)


def test_workspace_isolation_and_license_gate(world: EntityStore, authorizer: Authorizer) -> None:
    d = authorizer.decide(req("gus", "pipeline:read", 'Pipeline::"orders"', ctx_for("globex")), world)
    assert not d.allowed and d.determining == ("community.workspace-isolation",)
    # ada addresses another workspace in the URL while acting on her own pipeline: refused too.
    d = authorizer.decide(req("ada", "pipeline:read", 'Pipeline::"orders"', ctx_for("globex")), world)
    assert not d.allowed and d.determining == ("community.workspace-isolation",)
    d = authorizer.decide(req("ada", "audit:export", 'Workspace::"acme"', ctx_for(features=("abac",))), world)
    assert not d.allowed and d.determining == ("community.license.audit-export",)
    d = authorizer.decide(
        req("ada", "audit:export", 'Workspace::"acme"', ctx_for(features=("audit_export",))), world
    )
    assert d.allowed and d.determining == ("community.role.admin",)


def test_errors_are_reported_and_the_erroring_policy_skipped(world: EntityStore) -> None:
    ps = PolicySet.parse(
        '@id("owner-team")\npermit (principal, action == Action::"pipeline:read", resource is Pipeline)\n'
        "when { resource.owner.team == principal.team };"
    )
    ghost_owned = S.entity("Pipeline", "ghostly", workspace="acme", owner="nobody", tags=[])
    r = Request(EntityRef("Principal", "ed"), "pipeline:read", ghost_owned, ctx_for())
    d = Authorizer(ps).decide(r, world)
    assert not d.allowed and d.reason == "default-deny"
    assert len(d.errors) == 1 and "owner-team" in d.errors[0] and "nobody" in d.errors[0]


def test_requests_that_do_not_fit_the_schema_are_denied_not_raised(
    world: EntityStore, authorizer: Authorizer
) -> None:
    bad = [
        req("ed", "pipeline:read", 'Dataset::"customers"'),
        req("ed", "pipeline:fly", 'Pipeline::"orders"'),
        Request(EntityRef("Workspace", "acme"), "pipeline:read", EntityRef("Pipeline", "orders"), ctx_for()),
        Request(
            EntityRef("Principal", "ed"), "pipeline:read", EntityRef("Pipeline", "orders"), Context(now=None)
        ),  # type: ignore[arg-type]
    ]
    decisions = authorizer.decide_batch(bad, world)
    assert [d.allowed for d in decisions] == [False] * 4
    assert "applies to Pipeline, not Dataset" in decisions[0].errors[0]
    assert "unknown action 'pipeline:fly'" in decisions[1].errors[0]
    assert "principal of type Principal" in decisions[2].errors[0]
    assert "'now'" in decisions[3].errors[0]


def test_entities_can_travel_with_the_request(authorizer: Authorizer) -> None:
    me = S.entity(
        "Principal", "zoe", workspace="initech", team="data", roles=["editor"], region="eu", clearance=[]
    )
    mine = S.entity("Pipeline", "zp", workspace="initech", owner="zoe", tags=[])
    other = S.entity("Pipeline", "op", workspace="acme", owner="ed", tags=[])
    ds = authorizer.decide_batch(
        [
            Request(me, "pipeline:update", mine, ctx_for("initech")),
            Request(me.uid, "pipeline:update", other, ctx_for("initech")),
        ]
    )
    assert [d.allowed for d in ds] == [True, False]
    assert ds[1].determining == ("community.workspace-isolation",)
    assert ds[0].decision_id != ds[1].decision_id


def test_a_request_cannot_override_what_the_store_says_about_an_entity(
    world: EntityStore, authorizer: Authorizer
) -> None:
    # ann is a viewer in the store; a request claiming she is an admin is refused, not believed.
    forged = S.entity(
        "Principal", "ann", workspace="acme", team="analytics", roles={"admin"}, region="eu", clearance=[]
    )
    d = authorizer.decide(Request(forged, "policy:update", EntityRef("Workspace", "acme"), ctx_for()), world)
    assert not d.allowed and "other attributes or parents than the entity store has" in d.errors[0]


def test_explain_names_the_determining_policies_the_slice_and_errors(
    world: EntityStore, authorizer: Authorizer
) -> None:
    exp = authorizer.explain(req("ann", "dataset:read", 'Dataset::"customers"'), world)
    text = exp.render()
    assert text.startswith("decision: ALLOW")
    assert "analysts-read-masked (permit, custom.cedar:2)" in text
    assert 'when { principal.team == "analytics"' in text
    assert "obligations: mask:pii, drop:column:ssn" in text
    # The slice: dataset:read policies plus the unscoped isolation forbid; not the write rule.
    assert set(exp.considered) == {
        "community.workspace-isolation",
        "community.role.viewer",
        "analysts-read-masked",
        "cleared-read-hashed",
        "no-reads-outside-the-region",
    }
    assert f"considered 5 of {len(authorizer.policies)} policies" in text
    unsliced = Authorizer(authorizer.policies, slicing=False).explain(
        req("ann", "dataset:read", 'Dataset::"customers"'), world
    )
    assert len(unsliced.considered) == len(authorizer.policies)
    assert unsliced.decision.determining == exp.decision.determining
    assert exp.to_dict()["determining_policies"][1]["id"] == "analysts-read-masked"


def test_slicing_indexes_entity_scopes(world: EntityStore) -> None:
    ps = PolicySet.parse(
        '@id("ann-only")\npermit (principal == Principal::"ann", action == Action::"pipeline:read", resource);\n'
        '@id("acme-members")\npermit (principal in Workspace::"acme", action == Action::"pipeline:read", resource);\n'
        '@id("globex-pipes")\nforbid (principal, action, resource in Workspace::"globex");\n'
        '@id("orders")\npermit (principal, action, resource == Pipeline::"orders");\n'
    )
    az = Authorizer(ps)
    assert set(az.slice_ids(req("ann", "pipeline:read", 'Pipeline::"orders"'), world)) == {
        "ann-only",
        "acme-members",
        "orders",
    }
    assert set(az.slice_ids(req("gus", "pipeline:read", 'Pipeline::"gx-orders"'), world)) == {"globex-pipes"}
    assert az.slice_ids(req("gus", "connection:read", 'Connection::"pg"'), world) == ()
    d = az.decide(req("ann", "pipeline:read", 'Pipeline::"orders"'), world)
    assert d.determining == ("ann-only", "acme-members", "orders")


def test_decisions_go_to_the_sink_the_caller_passes(world: EntityStore, authorizer: Authorizer) -> None:
    sink = MemoryDecisionSink()
    assert isinstance(sink, DecisionSink)
    r = req("ann", "dataset:read", 'Dataset::"customers"')
    d = authorizer.decide(r, world)
    sink.write(d, r)
    (rec,) = sink.records
    assert rec["decision_id"] == d.decision_id and rec["effect"] == "allow"
    assert rec["obligations"] == ["mask:pii", "drop:column:ssn"]
    assert rec["at"] == "2025-06-01T12:00:00+00:00" and rec["source_ip"] == "10.0.0.1"
    assert rec["policy_version"] == authorizer.policies.version


def test_tiers_gate_custom_policies_and_obligations() -> None:
    assert effective_policies(frozenset()).ids == community_policies().ids
    with pytest.raises(FeatureNotLicensedError, match="'abac'"):
        effective_policies(frozenset(), CUSTOM)
    with pytest.raises(FeatureNotLicensedError, match="'masking'"):
        effective_policies({"abac"}, CUSTOM)
    assert len(effective_policies({"abac", "masking"}, CUSTOM)) == len(community_policies()) + len(CUSTOM)
    squat = PolicySet.parse('@id("community.mine")\npermit (principal, action, resource);')
    with pytest.raises(PolicyValidationError, match="reserved"):
        effective_policies({"abac"}, squat)

    class Snowflake:
        name = "snowflake"
        required_feature = "snowflake"

    with pytest.raises(FeatureNotLicensedError, match="connector 'snowflake'"):
        require_connector_feature(Snowflake, {"abac"})
    require_connector_feature(Snowflake, {"snowflake"})


def test_decide_denies_rather_than_raises_when_cedar_refuses_the_entity_store() -> None:
    """decide()'s own path for uid-only requests meets the store's Cedar handle first; an entity
    Cedar refuses (a principal's ``team`` that is a number) denies with the reason, as in a batch."""
    from openfuse_policy import OPENFUSE_SCHEMA, community_policies
    from openfuse_policy.entities import Entity

    bad = Entity.from_encoded(
        EntityRef("Principal", "ann"),
        {"team": 7},
        {"team": 7, "workspace": {"__entity": {"type": "Workspace", "id": "acme"}}},
        (EntityRef("Workspace", "acme"),),
    )
    store = EntityStore([OPENFUSE_SCHEMA.entity("Workspace", "acme", name="ACME"), bad])
    request = Request(
        EntityRef("Principal", "ann"),
        "pipeline:list",
        EntityRef("Workspace", "acme"),
        ctx_for(),
    )
    az = Authorizer(community_policies())
    single = az.decide(request, store)
    [batched] = az.decide_batch([request], EntityStore(store, schema=OPENFUSE_SCHEMA))  # a fresh handle
    assert not single.allowed and not batched.allowed
    assert single.errors and "Cedar refused the entities" in single.errors[0]
    assert single.errors == batched.errors
