"""`openfuse policy ...` and `openfuse license ...`, registered into a typer app as the CLI does."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from openfuse_policy.cli import register
from openfuse_policy.license import public_key_jwk

CASES = Path(__file__).parent / "cases"
runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_policy_validate_ok_and_refused(app: typer.Typer, tmp_path: Path) -> None:
    good = tmp_path / "good.cedar"
    good.write_text(
        '@id("p")\n@obligation("mask:pii")\npermit (principal, action == Action::"dataset:read", resource);\n'
    )
    r = runner.invoke(app, ["policy", "validate", str(good)])
    assert r.exit_code == 0, r.output
    assert "ok: 1 policies valid" in r.output and "obligations: mask:pii" in r.output
    bad = tmp_path / "bad.cedar"
    bad.write_text(
        '@id("q")\npermit (principal, action, resource is Pipeline)\nwhen { resource.colour == "red" };\n'
    )
    r = runner.invoke(app, ["policy", "validate", str(bad)])
    assert r.exit_code == 1
    assert f"{bad}:3: policy 'q' [validation]" in r.output and "colour" in r.output
    r = runner.invoke(app, ["policy", "validate", str(tmp_path / "missing.cedar")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_policy_test_reports_coverage_and_enforces_the_minimum(app: typer.Typer, tmp_path: Path) -> None:
    r = runner.invoke(app, ["policy", "test", str(CASES), "--min-coverage", "1.0"])
    assert r.exit_code == 0, r.output
    assert "PASS: 13/13 cases passed" in r.output and "coverage: 100.0%" in r.output
    extra = tmp_path / "extra.cedar"
    extra.write_text(
        '@id("never")\nforbid (principal, action, resource) when { principal.team == "nobody" };\n'
    )
    r = runner.invoke(app, ["policy", "test", str(CASES), "--policies", str(extra), "--min-coverage", "0.8"])
    assert r.exit_code == 1
    assert "coverage: 0.0% of policies (0/1)" in r.output and "below the minimum 80.0%" in r.output
    r = runner.invoke(app, ["policy", "test", str(tmp_path / "nothing-here")])
    assert r.exit_code == 2


def test_policy_explain_and_schema(app: typer.Typer) -> None:
    r = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "--entities",
            str(CASES / "community.yaml"),
            "--case",
            "a URL naming another workspace is refused",
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith("decision: DENY") and "community.workspace-isolation (forbid" in r.output
    r = runner.invoke(
        app,
        [
            "policy", "explain", "--entities", str(CASES / "community.yaml"), "--principal", "ed",
            "--action", "pipeline:run", "--resource", 'Pipeline::"orders"', "--context", '{"source_ip": "10.0.0.1"}', "--json",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["effect"] == "allow" and out["determining"] == ["community.role.editor"]
    assert "community.role.viewer" not in out["considered"]  # pipeline:run is a write: sliced away
    r = runner.invoke(app, ["policy", "schema", "--format", "json"])
    assert r.exit_code == 0 and "pipeline:run" in json.loads(r.output)[""]["actions"]


def test_license_issue_verify_show(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "issuer.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(key.public_key(), "k1")]}))
    lic = tmp_path / "license.jwt"
    r = runner.invoke(
        app,
        [
            "license", "issue", "--key", str(tmp_path / "issuer.pem"), "--kid", "k1", "--customer", "Acme",
            "--features", "abac,masking", "--days", "365", "--seats", "10", "--out", str(lic),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    monkeypatch.delenv("OPENFUSE_LICENSE", raising=False)
    monkeypatch.delenv("OPENFUSE_LICENSE_FILE", raising=False)
    r = runner.invoke(app, ["license", "verify", "--file", str(lic), "--keys", str(jwks)])
    assert r.exit_code == 0 and "valid: enterprise license for Acme" in r.output
    monkeypatch.setenv("OPENFUSE_LICENSE", lic.read_text().strip())
    r = runner.invoke(app, ["license", "show", "--keys", str(jwks), "--json"])
    shown = json.loads(r.output)
    assert shown["edition"] == "enterprise" and shown["source"] == "$OPENFUSE_LICENSE"
    assert shown["flags"] == {"abac": True, "masking": True, "audit_export": False}
    exp = dt.datetime.fromisoformat(shown["expires"])
    assert 364 <= (exp - dt.datetime.now(dt.UTC)).days <= 365
    # With the shipped keys (the default) the self-issued license does not verify.
    r = runner.invoke(app, ["license", "verify"])
    assert r.exit_code == 1 and "running as community edition" in r.output and "unknown key" in r.output
    monkeypatch.delenv("OPENFUSE_LICENSE")
    r = runner.invoke(app, ["license", "show"])
    assert r.exit_code == 0 and "edition:  community" in r.output and "no license installed" in r.output


def test_importing_the_package_and_cli_loads_nothing_heavy() -> None:
    code = (
        "import sys, json, openfuse_policy, openfuse_policy.cli;"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"cedarpy", "typer", "cryptography", "yaml", "pyarrow", "openfuse_connectors"}, loaded
