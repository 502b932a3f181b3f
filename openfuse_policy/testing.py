"""Policy tests: YAML cases run against a policy set, with coverage of policy ids.

In the spirit of ``opa test --coverage``: each case is a request and the expected decision; the
report says which cases failed and which policies determined at least one decision. A policy that
decides nothing in any test is untested; ``--min-coverage`` fails the run below a threshold.

A test file (``*.yaml`` / ``*.yml``)::

    policies: ../policies          # optional: .cedar file or folder, relative to this file
    builtin: true                  # evaluate with the built-in community policies (default)
    context:                       # defaults for every case
      now: 2025-06-01T12:00:00Z    # default 2025-01-01T00:00:00Z
      license_features: [abac, masking]
    entities:                      # type, id, then the attributes (see `openfuse policy schema`)
      - {type: Workspace, id: w1}
      - {type: Principal, id: alice, workspace: w1, team: data, roles: [editor], region: eu, clearance: []}
      - {type: Pipeline, id: p1, workspace: w1, owner: alice, tags: [finance]}
    cases:
      - name: editors run pipelines in their workspace
        principal: alice                 # a Principal id, or Type::"id"
        action: pipeline:run
        resource: Pipeline::"p1"
        context: {source_ip: 10.0.0.1}   # merged over the defaults
        expect: allow                    # allow | deny
        policies: [community.role.editor]  # optional: exactly these determine
        obligations: [mask:pii]            # optional: exactly these obligations

Coverage is computed over the policies under test: those given with ``--policies`` (or the
files' ``policies:``); when there are none, the built-in set itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfuse_policy.decision import Context, Decision, Request
from openfuse_policy.entities import EntityRef, EntityStore
from openfuse_policy.errors import PolicyTestError, RequestError
from openfuse_policy.obligation import Obligation
from openfuse_policy.policy import PolicySet
from openfuse_policy.schema import OPENFUSE_SCHEMA, GovernanceSchema

__all__ = [
    "DEFAULT_TEST_NOW",
    "CaseResult",
    "PolicyTestCase",
    "PolicyTestReport",
    "PolicyTestSuite",
    "load_suite",
    "load_suites",
    "run_policy_tests",
]

DEFAULT_TEST_NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
_CASE_KEYS = {"name", "principal", "action", "resource", "context", "expect", "policies", "obligations"}
_FILE_KEYS = {"policies", "builtin", "context", "entities", "cases"}


@dataclass(frozen=True)
class PolicyTestCase:
    name: str
    file: str
    request: Request
    expect_allow: bool
    expect_policies: tuple[str, ...] | None = None
    expect_obligations: tuple[Obligation, ...] | None = None


@dataclass(frozen=True)
class PolicyTestSuite:
    file: str
    cases: tuple[PolicyTestCase, ...]
    store: EntityStore
    policy_paths: tuple[Path, ...] = ()
    builtin: bool = True


@dataclass(frozen=True)
class CaseResult:
    case: PolicyTestCase
    decision: Decision
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PolicyTestReport:
    """Per-case results and coverage of the policies under test."""

    results: tuple[CaseResult, ...]
    policy_ids: tuple[str, ...]
    hits: Mapping[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def covered(self) -> tuple[str, ...]:
        return tuple(p for p in self.policy_ids if self.hits.get(p, 0))

    @property
    def uncovered(self) -> tuple[str, ...]:
        return tuple(p for p in self.policy_ids if not self.hits.get(p, 0))

    @property
    def coverage(self) -> float:
        """Share of the policies under test that determined at least one decision (1.0 if none)."""
        return len(self.covered) / len(self.policy_ids) if self.policy_ids else 1.0

    def ok(self, min_coverage: float = 0.0) -> bool:
        return not self.failed and self.coverage + 1e-9 >= min_coverage

    def render(self, *, verbose: bool = False, min_coverage: float | None = None) -> str:
        lines: list[str] = []
        current = None
        for r in self.results:
            if r.case.file != current:
                current = r.case.file
                lines.append(f"{current}:")
            if r.passed and not verbose:
                continue
            status = "PASS" if r.passed else "FAIL"
            lines.append(f"  {status}  {r.case.name}")
            for p in r.problems:
                lines.append(f"        {p}")
        lines.append("-" * 78)
        n, bad = len(self.results), len(self.failed)
        lines.append(f"{'PASS' if not bad else 'FAIL'}: {n - bad}/{n} cases passed")
        lines.append(
            f"coverage: {self.coverage:.1%} of policies ({len(self.covered)}/{len(self.policy_ids)}) "
            "determined at least one decision" + (f" (minimum {min_coverage:.0%})" if min_coverage else "")
        )
        for pid in self.policy_ids:
            mark = f"{self.hits.get(pid, 0):>5}" if self.hits.get(pid, 0) else "    -"
            if verbose or not self.hits.get(pid, 0):
                lines.append(f"  {mark}  {pid}")
        if min_coverage is not None and self.coverage + 1e-9 < min_coverage:
            lines.append(f"FAIL: coverage {self.coverage:.1%} is below the minimum {min_coverage:.1%}")
        return "\n".join(lines)


# -- loading ---------------------------------------------------------------------------------


def load_suites(*paths: str | Path, schema: GovernanceSchema | None = None) -> list[PolicyTestSuite]:
    """Every ``*.yaml``/``*.yml`` test file under the given files or folders, sorted."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml")))
        elif p.exists():
            files.append(p)
        else:
            raise PolicyTestError("no such file or folder", file=str(p))
    return [load_suite(f, schema=schema) for f in files]


def load_suite(path: str | Path, *, schema: GovernanceSchema | None = None) -> PolicyTestSuite:
    import yaml

    schema = schema or OPENFUSE_SCHEMA
    path = Path(path)
    f = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise PolicyTestError(f"cannot read: {e}", file=f) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise PolicyTestError("a test file is a mapping with a `cases:` list", file=f)
    unknown = set(doc) - _FILE_KEYS
    if unknown:
        raise PolicyTestError(f"unknown key(s) {sorted(unknown)}; expected {sorted(_FILE_KEYS)}", file=f)

    entities = []
    for i, raw in enumerate(doc.get("entities") or []):
        if not isinstance(raw, dict) or "type" not in raw or "id" not in raw:
            raise PolicyTestError(f"entities[{i}] needs `type` and `id`", file=f)
        attrs = {k: _yaml_value(v) for k, v in raw.items() if k not in ("type", "id")}
        try:
            entities.append(schema.entity(str(raw["type"]), str(raw["id"]), **attrs))
        except RequestError as e:
            raise PolicyTestError(f"entities[{i}] ({raw['type']}::{raw['id']}): {e}", file=f) from e
    try:
        store = EntityStore(entities, schema=schema)
    except RequestError as e:
        raise PolicyTestError(str(e), file=f) from e

    defaults = doc.get("context") or {}
    cases = tuple(_case(c, i, f, defaults, schema) for i, c in enumerate(doc["cases"]))
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PolicyTestError(f"case names must be unique; repeated: {sorted(dup)}", file=f)
    pol = doc.get("policies")
    pol_list = [pol] if isinstance(pol, str) else list(pol or [])
    return PolicyTestSuite(
        file=f,
        cases=cases,
        store=store,
        policy_paths=tuple((path.parent / p).resolve() for p in pol_list),
        builtin=bool(doc.get("builtin", True)),
    )


def _case(raw: Any, i: int, f: str, defaults: Mapping[str, Any], schema: GovernanceSchema) -> PolicyTestCase:
    if not isinstance(raw, dict):
        raise PolicyTestError(f"cases[{i}] is not a mapping", file=f)
    name = str(raw.get("name") or f"case {i}")
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        raise PolicyTestError(
            f"unknown key(s) {sorted(unknown)}; expected {sorted(_CASE_KEYS)}", file=f, case=name
        )
    missing = [k for k in ("principal", "action", "resource", "expect") if k not in raw]
    if missing:
        raise PolicyTestError(f"missing {', '.join(missing)}", file=f, case=name)
    expect = str(raw["expect"]).lower()
    if expect not in ("allow", "deny"):
        raise PolicyTestError(f"expect must be allow or deny, not {raw['expect']!r}", file=f, case=name)
    try:
        ctx_values = {**defaults, **(raw.get("context") or {})}
        unknown_ctx = set(ctx_values) - {a.name for a in schema.context}
        if unknown_ctx:
            raise RequestError(f"unknown context attribute(s) {sorted(unknown_ctx)}")
        now = _yaml_value(ctx_values.get("now", DEFAULT_TEST_NOW))
        if isinstance(now, str):
            now = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
        if not isinstance(now, dt.datetime):
            raise RequestError("context.now must be a datetime", value=now)
        context = Context(
            now=now,
            license_features=frozenset(ctx_values.get("license_features") or ()),
            source_ip=ctx_values.get("source_ip"),
            workspace=ctx_values.get("workspace"),
        )
        request = Request(
            principal=EntityRef.parse(raw["principal"], default_type="Principal"),
            action=str(raw["action"]),
            resource=EntityRef.parse(raw["resource"]),
            context=context,
        )
        schema.action(request.action)
        obligations = None
        if raw.get("obligations") is not None:
            obligations = tuple(Obligation.parse(str(o)) for o in raw["obligations"])
    except (RequestError, ValueError) as e:
        raise PolicyTestError(str(e), file=f, case=name) from e
    pol = raw.get("policies")
    return PolicyTestCase(
        name=name,
        file=f,
        request=request,
        expect_allow=expect == "allow",
        expect_policies=tuple(str(p) for p in pol) if pol is not None else None,
        expect_obligations=obligations,
    )


def _yaml_value(v: Any) -> Any:
    # YAML timestamps without a zone are UTC (YAML 1.1); make that explicit.
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    return v


# -- running ---------------------------------------------------------------------------------


def run_policy_tests(
    suites: Sequence[PolicyTestSuite],
    policies: PolicySet | None = None,
    *,
    builtin: bool | None = None,
    schema: GovernanceSchema | None = None,
) -> PolicyTestReport:
    """Run every case; ``policies`` (if given) replaces the files' own ``policies:``.

    Args:
        suites: loaded test files.
        policies: the policies under test.
        builtin: evaluate with the built-in community policies; ``None`` follows each file.
        schema: the resource model (default OpenFuse's).
    """
    from openfuse_policy.evaluator import Authorizer
    from openfuse_policy.tiers import community_policies

    schema = schema or (policies.schema if policies is not None else OPENFUSE_SCHEMA)
    results: list[CaseResult] = []
    under_test: dict[str, None] = {}
    hits: dict[str, int] = {}
    authorizers: dict[tuple[str, bool], Authorizer] = {}
    for suite in suites:
        tested = policies
        if tested is None and suite.policy_paths:
            tested = PolicySet.load(*suite.policy_paths, schema=schema)
        use_builtin = suite.builtin if builtin is None else builtin
        base = community_policies(schema)
        if tested is None:
            effective = base
            under_test.update(dict.fromkeys(base.ids))
        else:
            effective = base + tested if use_builtin else tested
            under_test.update(dict.fromkeys(tested.ids))
        key = (effective.version, use_builtin)
        if key not in authorizers:
            authorizers[key] = Authorizer(effective, schema)
        decisions = authorizers[key].decide_batch([c.request for c in suite.cases], suite.store)
        for case, decision in zip(suite.cases, decisions, strict=True):
            for pid in decision.determining:
                hits[pid] = hits.get(pid, 0) + 1
            results.append(CaseResult(case, decision, tuple(_check(case, decision))))
    return PolicyTestReport(tuple(results), tuple(under_test), hits)


def _check(case: PolicyTestCase, d: Decision) -> Iterable[str]:
    if d.allowed != case.expect_allow:
        got = f"{d.effect} ({d.reason}" + (f": {', '.join(d.determining)}" if d.determining else "") + ")"
        yield f"expected {'allow' if case.expect_allow else 'deny'}, got {got}"
    if case.expect_policies is not None and sorted(case.expect_policies) != sorted(d.determining):
        yield f"expected determining policies {sorted(case.expect_policies)}, got {sorted(d.determining)}"
    if case.expect_obligations is not None and sorted(map(str, case.expect_obligations)) != sorted(
        map(str, d.obligations)
    ):
        yield (
            f"expected obligations {sorted(map(str, case.expect_obligations))}, got {sorted(map(str, d.obligations))}"
        )
    for e in d.errors:
        yield f"evaluation error: {e}"
