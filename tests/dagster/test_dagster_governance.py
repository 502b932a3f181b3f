"""Data-plane governance end to end: Dagster sync steps ask the policies as the pipeline's owner,
apply obligations as transforms, and record the decision in the materialization metadata.

A `pii` column arrives hashed for an analyst without clearance and plain for a steward with it;
an owner the policies do not permit fails the step naming why; a forbid names its policy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dagster import AssetKey, materialize
from support import pg_exec, pg_rows

from openfuse_connectors import PipelineSpec
from openfuse_dagster import openfuse_assets, openfuse_resources
from openfuse_policy import issue_license
from openfuse_policy.license import public_key_jwk

pytestmark = pytest.mark.postgres

SALT = "pepper-for-tests-only"

POLICIES = """
// Analysts without pii clearance read pii columns only hashed.
@id("analysts-see-pii-hashed")
@obligation("hash:pii")
permit (principal, action == Action::"dataset:read", resource is Dataset)
when {
  principal.team == "analytics" && !principal.clearance.contains("pii") &&
  resource.column_tags.contains("pii")
};

// pii never leaves for principals working from the US region.
@id("pii-stays-in-eu")
forbid (principal, action == Action::"dataset:read", resource is Dataset)
when { principal.region == "us" && resource.column_tags.contains("pii") };
"""

PRINCIPALS = {
    "principals": {
        "ann": {"team": "analytics", "roles": ["editor"], "region": "eu", "clearance": []},
        "sam": {"team": "governance", "roles": ["editor"], "region": "eu", "clearance": ["pii"]},
        "uma": {"team": "analytics", "roles": ["editor"], "region": "us", "clearance": ["pii"]},
        "kit": {"team": "contractors", "roles": [], "region": "eu", "clearance": []},
    }
}


@pytest.fixture
def governed(pg_pair: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    src, dst = pg_pair
    pg_exec(
        src,
        "CREATE TABLE customers (id int PRIMARY KEY, name text, email text)",
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bob', 'bob@example.com'), "
        "(3, 'Cy', NULL)",
    )
    gov = tmp_path / "governance"
    gov.mkdir()
    (gov / "custom.cedar").write_text(POLICIES)
    (gov / "principals.yaml").write_text(json.dumps(PRINCIPALS))  # JSON is YAML
    key = Ed25519PrivateKey.generate()
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(key.public_key(), "t1")]}))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv("OPENFUSE_LICENSE", issue_license(pem, "t1", "Tests", features=["abac", "masking"]))
    monkeypatch.setenv("OPENFUSE_LICENSE_PUBLIC_KEYS", str(jwks))
    monkeypatch.setenv("OPENFUSE_POLICY_DIR", str(gov))
    monkeypatch.setenv("OPENFUSE_MASKING_SALT", SALT)
    monkeypatch.setenv("OF_GOV_SRC", src)
    monkeypatch.setenv("OF_GOV_DST", dst)
    return src, dst


def pipeline(owner: str, schema: str) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": f"customers_for_{owner}",
            "owner": owner,
            "source": {"connector": "postgres", "config": {"dsn": "${OF_GOV_SRC}"}},
            "destination": {"connector": "postgres", "config": {"dsn": "${OF_GOV_DST}", "schema": schema}},
            "streams": [
                {"name": "public.customers", "primary_key": ["id"], "column_tags": {"email": ["pii"]}}
            ],
        }
    )


def run(spec: PipelineSpec) -> Any:
    return materialize([openfuse_assets(spec)], resources=openfuse_resources(spec), raise_on_error=False)


def metadata(result: Any) -> dict[str, Any]:
    (event,) = result.get_asset_materialization_events()
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_pii_arrives_hashed_for_an_analyst_and_plain_for_a_steward(governed: tuple[str, str]) -> None:
    _, dst = governed
    analyst, steward = run(pipeline("ann", "analyst")), run(pipeline("sam", "steward"))
    assert analyst.success and steward.success
    expected = {
        1: hashlib.sha256(SALT.encode() + b"ada@example.com").hexdigest(),
        2: hashlib.sha256(SALT.encode() + b"bob@example.com").hexdigest(),
        3: None,
    }
    assert dict(pg_rows(dst, "SELECT id, email FROM analyst.customers ORDER BY id")) == expected
    assert pg_rows(dst, "SELECT id, name, email FROM steward.customers ORDER BY id") == [
        (1, "Ada", "ada@example.com"), (2, "Bob", "bob@example.com"), (3, "Cy", None),
    ]  # fmt: skip
    # The decisions are on the materializations: ids, deciding policies, obligations applied.
    m = metadata(analyst)
    for k in ("policy_decision_read", "policy_decision_write"):
        assert len(m[k]) == 36
    assert "analysts-see-pii-hashed" in m["policy_allowed_by"]
    assert m["policy_obligations"] == ["hash:pii"] and m["policy_columns"] == {"email": "hash"}
    assert m["passthrough"] is False  # an obligation turns the byte pass-through off
    s = metadata(steward)
    assert "analysts-see-pii-hashed" not in s["policy_allowed_by"] and s["policy_columns"] == {}
    assert s["policy_decision_read"] != m["policy_decision_read"]
    plain = {k: v for k, v in {**m, **s}.items() if not k.startswith("dagster/")}
    assert SALT not in json.dumps(plain, default=str)  # the salt is a secret


def test_denied_owners_fail_the_step_naming_why_and_nothing_lands(governed: tuple[str, str]) -> None:
    _, dst = governed
    forbidden = run(pipeline("uma", "us_copy"))
    no_role = run(pipeline("kit", "contractor"))
    assert not forbidden.success and not no_role.success
    texts = {
        name: " ".join(str(e.event_specific_data.error.message) for e in r.all_events if e.is_step_failure)
        for name, r in (("uma", forbidden), ("kit", no_role))
    }
    assert "forbidden by pii-stays-in-eu" in texts["uma"] and "'uma' may not read" in texts["uma"]
    assert "no policy permits it (default deny)" in texts["kit"]
    assert pg_rows(dst, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('us_copy', 'contractor')") == [
        (0,)
    ]


def test_without_a_policy_dir_nothing_is_enforced_and_the_metadata_says_so(
    governed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENFUSE_POLICY_DIR")
    result = run(pipeline("kit", "open_copy"))
    assert result.success
    assert metadata(result)["policy_enforcement"] == "off"


def test_the_gate_is_rebuilt_when_a_policy_file_changes(governed: tuple[str, str], tmp_path: Path) -> None:
    assert run(pipeline("sam", "first")).success
    (tmp_path / "governance" / "zz-lockdown.cedar").write_text(
        '@id("lockdown")\nforbid (principal, action == Action::"dataset:write", resource);\n'
    )
    later = dt.datetime.now().timestamp() + 5  # mtime granularity: make the change visible
    import os

    os.utime(tmp_path / "governance" / "zz-lockdown.cedar", (later, later))
    result = run(pipeline("sam", "second"))
    assert not result.success
    assert any("forbidden by lockdown" in str(e.event_specific_data.error.message)
               for e in result.all_events if e.is_step_failure)  # fmt: skip
    assert AssetKey(["postgres", "second", "customers"]) not in {
        e.asset_key for e in result.get_asset_materialization_events()
    }
