"""Generators for the policy tests: a random entity universe, policy sets and requests.

Everything is driven by a seeded ``random.Random`` so a failure reproduces from its seed. The
generated policies are valid against the OpenFuse schema (Cedar's validator checks them on
load) and exercise what slicing must get right: action ``==``/``in [..]``/groups/unscoped,
principal and resource scopes by type, by entity and by ancestor, ``when``/``unless`` on
attributes and context, and conditions that *error* (a pipeline owned by a principal that is not
in the entity store), since errors must agree too.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from openfuse_policy.decision import Context, Request
from openfuse_policy.entities import Entity, EntityRef, EntityStore
from openfuse_policy.schema import OPENFUSE_SCHEMA as S

WORKSPACES = ("w0", "w1", "w2")
TEAMS = ("data", "analytics", "finance", "ops")
ROLES = ("admin", "editor", "viewer", "auditor")
REGIONS = ("eu", "us", "apac")
CLEARANCE = ("pii", "finance", "secret")
TAGS = ("prod", "dev", "finance", "pii")
FEATURES = ("abac", "masking", "audit_export")
GROUPS = ("read", "write", "manage")
RESOURCE_TYPES = ("Workspace", "Connection", "Pipeline", "Dataset", "Stream", "Run")
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def world_store() -> EntityStore:
    """Two workspaces: acme (ann viewer, ed editor, ada admin) and globex (gus admin)."""
    return EntityStore(
        [
            S.entity("Workspace", "acme"),
            S.entity("Workspace", "globex"),
            S.entity(
                "Principal",
                "ann",
                workspace="acme",
                team="analytics",
                roles={"viewer"},
                region="eu",
                clearance=[],
            ),
            S.entity(
                "Principal",
                "ed",
                workspace="acme",
                team="data",
                roles={"editor"},
                region="us",
                clearance={"pii"},
            ),
            S.entity(
                "Principal",
                "ada",
                workspace="acme",
                team="data",
                roles={"admin"},
                region="eu",
                clearance={"pii"},
            ),
            S.entity(
                "Principal",
                "gus",
                workspace="globex",
                team="data",
                roles={"admin"},
                region="eu",
                clearance={"pii"},
            ),
            S.entity("Pipeline", "orders", workspace="acme", owner="ed", tags={"finance"}),
            S.entity("Pipeline", "gx-orders", workspace="globex", owner="gus", tags=[]),
            S.entity(
                "Connection",
                "pg",
                workspace="acme",
                owner="ed",
                connector="postgres",
                region="eu",
                tags=["prod"],
            ),
            S.entity(
                "Dataset",
                "customers",
                workspace="acme",
                connection="pg",
                region="eu",
                tags=[],
                columns=["id", "email", "ssn"],
                column_tags=["pii"],
            ),
        ]
    )


def ctx_for(workspace: str | None = "acme", features: tuple[str, ...] = ("abac", "masking")) -> Context:
    return Context(now=NOW, license_features=frozenset(features), source_ip="10.0.0.1", workspace=workspace)


def req(principal: str, action: str, resource: str, context: Context | None = None) -> Request:
    return Request(EntityRef("Principal", principal), action, EntityRef.parse(resource), context or ctx_for())


def sub(rng: random.Random, items: tuple[str, ...], p: float = 0.4) -> list[str]:
    return [x for x in items if rng.random() < p]


@dataclass
class Universe:
    store: EntityStore
    ids: dict[str, list[str]]  # type -> ids (including a few that are not in the store)


def universe(rng: random.Random, *, size: int = 8) -> Universe:
    """Entities in three workspaces. Some references dangle on purpose (``ghost`` principals)."""
    ents: list[Entity] = [S.entity("Workspace", w, name=w.upper()) for w in WORKSPACES]
    ids: dict[str, list[str]] = {"Workspace": list(WORKSPACES)}
    principals = [f"u{i}" for i in range(3 * size)]
    for p in principals:
        ents.append(
            S.entity(
                "Principal",
                p,
                workspace=rng.choice(WORKSPACES),
                team=rng.choice(TEAMS),
                roles=sub(rng, ROLES),
                region=rng.choice(REGIONS),
                clearance=sub(rng, CLEARANCE),
            )
        )
    ids["Principal"] = [*principals, "ghost"]  # ghost: not in the store
    owners = [*principals, "ghost"]
    for kind in ("Connection", "Pipeline", "Dataset", "Stream", "Run"):
        ids[kind] = [f"{kind[:2].lower()}{i}" for i in range(size)]
    for c in ids["Connection"]:
        ents.append(
            S.entity(
                "Connection",
                c,
                workspace=rng.choice(WORKSPACES),
                owner=rng.choice(owners),
                connector=rng.choice(("postgres", "files", "kafka")),
                region=rng.choice(REGIONS),
                tags=sub(rng, TAGS),
            )
        )
    for p in ids["Pipeline"]:
        ents.append(
            S.entity(
                "Pipeline", p, workspace=rng.choice(WORKSPACES), owner=rng.choice(owners), tags=sub(rng, TAGS)
            )
        )
    for d in ids["Dataset"]:
        ents.append(
            S.entity(
                "Dataset",
                d,
                workspace=rng.choice(WORKSPACES),
                connection=rng.choice(ids["Connection"]),
                region=rng.choice(REGIONS),
                tags=sub(rng, TAGS),
                columns=["id", "email", "ssn"][: rng.randint(1, 3)],
                column_tags=sub(rng, ("pii", "finance")),
            )
        )
    for s in ids["Stream"]:
        ents.append(
            S.entity(
                "Stream",
                s,
                workspace=rng.choice(WORKSPACES),
                pipeline=rng.choice(ids["Pipeline"]),
                connection=rng.choice(ids["Connection"]),
                tags=sub(rng, TAGS),
                columns=["id", "email"],
                column_tags=sub(rng, ("pii",)),
            )
        )
    for r in ids["Run"]:
        ents.append(
            S.entity(
                "Run",
                r,
                workspace=rng.choice(WORKSPACES),
                pipeline=rng.choice(ids["Pipeline"]),
                triggered_by=rng.choice(owners),
            )
        )
    for kind in ("Pipeline", "Dataset"):
        ids[kind].append(f"missing-{kind.lower()}")  # requested but not in the store
    return Universe(EntityStore(ents), ids)


# -- policies ----------------------------------------------------------------------------------

_GENERIC = (
    lambda r: f'principal.roles.contains("{r.choice(ROLES)}")',
    lambda r: f'principal.team == "{r.choice(TEAMS)}"',
    lambda r: f'principal.region == "{r.choice(REGIONS)}"',
    lambda r: 'principal.clearance.containsAny(["pii", "secret"])',
    lambda r: "resource in principal.workspace",
    lambda r: f'context.license_features.contains("{r.choice(FEATURES)}")',
    lambda r: f'context.now > datetime("2025-{r.randint(1, 12):02d}-01")',
    lambda r: 'context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8"))',
    lambda r: "(if context has workspace then context.workspace == principal.workspace else false)",
    lambda r: f'context.now.toTime() >= duration("{r.randint(6, 18)}h")',
)

_TYPED = {
    "Workspace": (lambda r: "resource == principal.workspace",),
    "Connection": (
        lambda r: f'resource.tags.contains("{r.choice(TAGS)}")',
        lambda r: "resource.owner == principal",
        lambda r: "resource.owner.team == principal.team",  # errors when the owner is a ghost
        lambda r: "resource.region == principal.region",
    ),
    "Pipeline": (
        lambda r: f'resource.tags.contains("{r.choice(TAGS)}")',
        lambda r: "resource.owner == principal",
        lambda r: "resource.owner.region == principal.region",  # errors when the owner is a ghost
    ),
    "Dataset": (
        lambda r: 'resource.column_tags.contains("pii")',
        lambda r: "principal.clearance.containsAll(resource.column_tags)",
        lambda r: "resource.region == principal.region",
        lambda r: "resource.connection.owner == principal",
    ),
    "Stream": (
        lambda r: 'resource.column_tags.contains("pii")',
        lambda r: f'resource.tags.contains("{r.choice(TAGS)}")',
        lambda r: "resource.pipeline.owner == principal",
    ),
    "Run": (
        lambda r: "resource.triggered_by == principal",
        lambda r: "resource.pipeline.owner == principal",
    ),
}


def _atom(rng: random.Random, rtype: str | None) -> str:
    if rtype and rng.random() < 0.5:
        return rng.choice(_TYPED[rtype])(rng)
    return rng.choice(_GENERIC)(rng)


def _condition(rng: random.Random, rtype: str | None) -> str:
    atoms = [_atom(rng, rtype) for _ in range(rng.randint(1, 3))]
    return f" {rng.choice(('&&', '&&', '||'))} ".join(f"({a})" for a in atoms)


def random_policy(rng: random.Random, i: int, universe_ids: dict[str, list[str]]) -> str:
    rtype = rng.choice(RESOURCE_TYPES) if rng.random() < 0.6 else None
    candidates = list(S.actions_on(rtype)) if rtype else list(S.action_names)
    x = rng.random()
    if x < 0.08:
        action = "action"
    elif x < 0.6:
        action = f'action == Action::"{rng.choice(candidates)}"'
    elif x < 0.85:
        picks = rng.sample(candidates, min(len(candidates), rng.randint(1, 3)))
        action = "action in [" + ", ".join(f'Action::"{a}"' for a in picks) + "]"
    else:
        groups = [g for g in GROUPS if set(S.actions_in_group(g)) & set(candidates)]
        action = f'action in Action::"{rng.choice(groups)}"'

    x = rng.random()
    if x < 0.5:
        principal = "principal"
    elif x < 0.65:
        principal = "principal is Principal"
    elif x < 0.8:
        principal = f'principal == Principal::"{rng.choice(universe_ids["Principal"])}"'
    elif x < 0.95:
        principal = f'principal in Workspace::"{rng.choice(WORKSPACES)}"'
    else:
        principal = f'principal is Principal in Workspace::"{rng.choice(WORKSPACES)}"'

    x = rng.random()
    ws = rng.choice(WORKSPACES)
    if rtype is None:
        resource = "resource" if x < 0.7 else f'resource in Workspace::"{ws}"'
    elif x < 0.6:
        resource = f"resource is {rtype}"
    elif x < 0.8:
        resource = f'resource is {rtype} in Workspace::"{ws}"'
    else:
        resource = f'resource == {rtype}::"{rng.choice(universe_ids[rtype])}"'

    effect = "forbid" if rng.random() < 0.25 else "permit"
    # Forbids always have a condition, so they carve exceptions rather than deny whole actions.
    n_clauses = rng.randint(1, 2) if effect == "forbid" or rng.random() < 0.8 else 0
    clauses = "".join(
        f"\n  {rng.choice(('when', 'when', 'unless'))} {{ {_condition(rng, rtype)} }}"
        for _ in range(n_clauses)
    )
    ann = f'@id("gen.{i}")\n'
    if effect == "permit" and rng.random() < 0.2:
        ann += f'@obligation("{rng.choice(("mask:pii", "hash:email", "drop:column:ssn", "mask:pii, hash:email"))}")\n'
    return f"{ann}{effect} ({principal}, {action}, {resource}){clauses};"


def random_policies(rng: random.Random, n: int, universe_ids: dict[str, list[str]]) -> str:
    return "\n\n".join(random_policy(rng, i, universe_ids) for i in range(n))


# -- requests ----------------------------------------------------------------------------------


def random_contexts(rng: random.Random, n: int) -> list[Context]:
    out = []
    for _ in range(n):
        out.append(
            Context(
                now=NOW + dt.timedelta(days=rng.randint(-200, 200), hours=rng.randint(0, 23)),
                license_features=frozenset(sub(rng, FEATURES, 0.5)),
                source_ip=rng.choice((None, "10.1.2.3", "192.168.0.7", "10.200.0.1")),
                workspace=rng.choice((None, *WORKSPACES)),
            )
        )
    return out


def random_requests(rng: random.Random, n: int, u: Universe, contexts: list[Context]) -> list[Request]:
    actions = S.actions
    principals = [EntityRef("Principal", p) for p in u.ids["Principal"]]
    by_type = {t: [EntityRef(t, i) for i in ids] for t, ids in u.ids.items()}
    out = []
    for _ in range(n):
        a = rng.choice(actions)
        rtype = rng.choice(a.resource_types)
        out.append(Request(rng.choice(principals), a.name, rng.choice(by_type[rtype]), rng.choice(contexts)))
    return out
