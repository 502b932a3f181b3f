"""Policy test files: pass/fail per case and coverage of policy ids, with a threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfuse_policy.errors import PolicyTestError
from openfuse_policy.policy import PolicySet
from openfuse_policy.testing import load_suite, load_suites, run_policy_tests
from openfuse_policy.tiers import community_policies

CASES = Path(__file__).parent / "cases"

PII_POLICIES = """
@id("pii.analysts-masked")
@obligation("mask:pii")
permit (principal, action == Action::"dataset:read", resource is Dataset)
when { principal.team == "analytics" };

@id("pii.no-foreign-region")
forbid (principal, action == Action::"dataset:read", resource is Dataset)
unless { resource.region == principal.region };

@id("pii.never-on-weekends")
forbid (principal, action in Action::"write", resource)
when { context.now.toDate() == datetime("2025-06-07") };
"""

PII_TESTS = """
policies: policies
context: {now: 2025-06-01T12:00:00Z}
entities:
  - {type: Workspace, id: acme}
  - {type: Principal, id: ann, workspace: acme, team: analytics, roles: [], region: eu, clearance: []}
  - {type: Principal, id: bob, workspace: acme, team: analytics, roles: [viewer], region: us, clearance: []}
  - {type: Dataset, id: customers, workspace: acme, connection: pg, region: eu, tags: [], columns: [email], column_tags: [pii]}
cases:
  - name: analysts read masked
    principal: ann
    action: dataset:read
    resource: Dataset::"customers"
    expect: allow
    policies: [pii.analysts-masked]
    obligations: [mask:pii]
  - name: not from another region
    principal: bob
    action: dataset:read
    resource: Dataset::"customers"
    expect: deny
    policies: [pii.no-foreign-region]
"""


@pytest.fixture
def pii_dir(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "pii.cedar").write_text(PII_POLICIES)
    (tmp_path / "pii.yaml").write_text(PII_TESTS)
    return tmp_path


def test_the_builtin_policies_pass_their_tests_with_full_coverage() -> None:
    report = run_policy_tests(load_suites(CASES))
    assert not report.failed, report.render()
    assert report.policy_ids == community_policies().ids
    assert report.coverage == 1.0 and report.ok(1.0)
    assert "PASS: 13/13 cases passed" in report.render()


def test_coverage_counts_the_policies_under_test_and_the_threshold_fails(pii_dir: Path) -> None:
    report = run_policy_tests(load_suites(pii_dir))
    assert not report.failed, report.render()
    assert report.policy_ids == ("pii.analysts-masked", "pii.no-foreign-region", "pii.never-on-weekends")
    assert report.uncovered == ("pii.never-on-weekends",)
    assert report.coverage == pytest.approx(2 / 3)
    assert report.ok(0.6) and not report.ok(0.8)
    text = report.render(min_coverage=0.8)
    assert "coverage: 66.7% of policies (2/3)" in text
    assert "-  pii.never-on-weekends" in text
    assert "FAIL: coverage 66.7% is below the minimum 80.0%" in text


def test_failing_cases_say_what_was_expected_and_what_happened(pii_dir: Path) -> None:
    text = (pii_dir / "pii.yaml").read_text()
    text = text.replace(
        "    expect: allow\n    policies: [pii.analysts-masked]\n    obligations: [mask:pii]",
        "    expect: deny\n    policies: [pii.analysts-masked]\n    obligations: [hash:email]",
    )
    (pii_dir / "pii.yaml").write_text(text)
    report = run_policy_tests(load_suites(pii_dir))
    (bad,) = report.failed
    assert bad.case.name == "analysts read masked"
    assert bad.problems == (
        "expected deny, got allow (permit: pii.analysts-masked)",
        "expected obligations ['hash:email'], got ['mask:pii']",
    )
    assert not report.ok()
    assert "FAIL  analysts read masked" in report.render()


def test_policies_given_explicitly_replace_the_files_own(pii_dir: Path) -> None:
    only_masked = PolicySet.parse(PII_POLICIES.split('@id("pii.no-foreign-region")')[0])
    report = run_policy_tests(load_suites(pii_dir), only_masked)
    assert report.policy_ids == ("pii.analysts-masked",)
    assert [r.case.name for r in report.failed] == ["not from another region"]


def test_malformed_test_files_are_refused_naming_file_and_case(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        'cases:\n  - {name: x, principal: ann, action: pipeline:read, resource: Pipeline::"p", expect: maybe}\n'
    )
    with pytest.raises(PolicyTestError, match=r"bad.yaml, case 'x': expect must be allow or deny"):
        load_suite(f)
    f.write_text("entities:\n  - {type: Pipeline, id: p, workspace: w}\ncases: []\n")
    with pytest.raises(PolicyTestError, match=r"entities\[0\] \(Pipeline::p\).*required attribute 'owner'"):
        load_suite(f)
    f.write_text(
        'cases:\n  - {name: y, principal: ann, action: pipeline:fly, resource: Pipeline::"p", expect: deny}\n'
    )
    with pytest.raises(PolicyTestError, match="unknown action 'pipeline:fly'"):
        load_suite(f)
