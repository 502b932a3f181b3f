"""The API on the policy engine: roles, custom Cedar policies per workspace (versioned, validated,
license-gated), explain, the license and feature endpoints, and the audit trail of decisions."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_support import TestClient, bearer, cli_key, make_settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.app import create_app
from api.auth.policy import cedar_action
from api.migrate import upgrade
from api.services.base import OPERATIONS
from openfuse_policy import ACTIONS, issue_license
from openfuse_policy.license import public_key_jwk

pytestmark = pytest.mark.postgres

EVERYTHING = ("abac", "masking", "audit_export")


@dataclass
class Licenses:
    jwks: Path
    pem: bytes

    def token(self, *features: str, expires: dt.datetime | None = None) -> str:
        nbf = dt.datetime.now(dt.UTC) - dt.timedelta(days=400) if expires else None
        return issue_license(self.pem, "test-1", "Acme Corp", features=features, seats=5, not_before=nbf,
                             expires=expires)  # fmt: skip


@pytest.fixture(scope="module")
def licenses(tmp_path_factory: pytest.TempPathFactory) -> Licenses:
    key = Ed25519PrivateKey.generate()
    tmp = tmp_path_factory.mktemp("keys")
    jwks = tmp / "keys.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(key.public_key(), "test-1")]}))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    return Licenses(jwks, pem)


@dataclass
class World:
    url: str
    home: Path
    licenses: Licenses

    def app(self, license: str | None) -> TestClient:
        settings = make_settings(self.url, self.home, license=license, license_public_keys=self.licenses.jwks)
        return TestClient(create_app(settings))

    def key(self, workspace: str, name: str, *attrs: str) -> dict[str, str]:
        return bearer(cli_key(make_settings(self.url, self.home), workspace, name, *attrs))


@pytest.fixture
def world(pg_db: str, tmp_path: Path, licenses: Licenses) -> World:
    settings = make_settings(pg_db, tmp_path / "home")
    upgrade(settings.db_url)
    return World(pg_db, tmp_path / "home", licenses)


@pytest.fixture
def enterprise(world: World) -> Iterator[TestClient]:
    with world.app(world.licenses.token(*EVERYTHING)) as c:
        yield c


def test_every_api_operation_is_a_cedar_action() -> None:
    import api.app  # noqa: F401 - registers every operation

    assert len(OPERATIONS) >= 30
    unmapped = sorted({op.action for op in OPERATIONS.values() if cedar_action(op.action) not in ACTIONS})
    assert unmapped == [], f"API actions without a Cedar action (they would always be denied): {unmapped}"


def test_roles_decide_inside_the_workspace(world: World) -> None:
    admin = world.key("acme", "ada")  # a new principal without roles is the workspace's admin
    viewer = world.key("acme", "vic", "roles=viewer")
    nobody = world.key("acme", "nora", "roles=")
    with world.app(None) as c:
        assert c.get("/api/v1/me", headers=admin).json()["attributes"]["roles"] == ["admin"]
        r = c.post("/api/v1/connections", headers=viewer, json={"name": "x", "connector": "sqlite",
                                                                 "config": {"path": "/tmp/x.db"}})  # fmt: skip
        assert r.status_code == 403, r.text
        assert r.json()["reasons"] == ["no policy permits connection:create (default deny)"]
        assert c.get("/api/v1/connections", headers=viewer).status_code == 200
        # No role: nothing but oneself.
        assert c.get("/api/v1/connections", headers=nobody).status_code == 403
        assert c.get("/api/v1/me", headers=nobody).status_code == 200
        # The audit log is an admin's; the denials above are in it, the read one included.
        assert c.get("/api/v1/audit", headers=viewer).status_code == 403
        log = c.get("/api/v1/audit", headers=admin, params={"outcome": "denied"}).json()["items"]
        seen = {(e["actor_name"], e["action"]) for e in log}
        assert {("vic", "connection:create"), ("nora", "connection:list"), ("vic", "audit:list")} <= seen
        entry = next(e for e in log if e["action"] == "connection:create")
        uuid.UUID(entry["detail"]["decision_id"])
        assert entry["detail"]["policies"] == []  # a default deny: no policy decided


def test_license_and_features(world: World, licenses: Licenses) -> None:
    h = world.key("acme", "ada")
    with world.app(None) as c:
        lic = c.get("/api/v1/license", headers=h).json()
        assert lic["edition"] == "community" and lic["reason_code"] == "missing"
        feats = c.get("/api/v1/features", headers=h).json()
        assert feats["edition"] == "community"
        assert feats["features"] == {"abac": False, "masking": False, "audit_export": False}
        assert set(feats["descriptions"]) == set(feats["features"])
    token = licenses.token("abac", "masking")
    with world.app(token) as c:
        lic = c.get("/api/v1/license", headers=h).json()
        assert (lic["edition"], lic["customer"], lic["seats"]) == ("enterprise", "Acme Corp", 5)
        assert token not in json.dumps(lic)  # the token is never shown
        assert c.get("/api/v1/features", headers=h).json()["features"] == {
            "abac": True, "masking": True, "audit_export": False,
        }  # fmt: skip
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload[:-4]}AAAA.{sig}"
    with world.app(tampered) as c:
        lic = c.get("/api/v1/license", headers=h).json()
        assert lic["edition"] == "community" and lic["reason_code"] in ("signature", "malformed"), lic
    expired = licenses.token("abac", expires=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    with world.app(expired) as c:
        lic = c.get("/api/v1/license", headers=h).json()
        assert lic["edition"] == "community" and lic["reason_code"] == "expired", lic


def test_invalid_policies_are_refused_with_cedar_diagnostics_and_nothing_is_stored(
    world: World, enterprise: TestClient
) -> None:
    h = world.key("acme", "ada")
    text = '@id("ok")\npermit (principal, action == Action::"pipeline:read", resource);\n\n' \
           '@id("bad")\npermit (principal, action == Action::"pipeline:read", resource)\n' \
           'when { principal.shoe_size > 3 };\n'  # fmt: skip
    r = enterprise.put("/api/v1/policies", headers=h, json={"text": text})
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc["type"].endswith("/policy-invalid")
    (d,) = doc["diagnostics"]
    # The line of the offending attribute (the `when`), not just the policy's first line.
    assert d["policy_id"] == "bad" and d["line"] == 6 and "shoe_size" in d["message"]
    assert doc["errors"][0]["field"] == "text:6"
    assert enterprise.get("/api/v1/policies", headers=h).json()["version"] == 0


def test_custom_permits_need_abac(world: World) -> None:
    h = world.key("acme", "ada")
    with world.app(None) as c:
        r = c.put(
            "/api/v1/policies", headers=h, json={"text": '@id("p")\npermit (principal, action, resource);'}
        )
        assert r.status_code == 403 and r.json()["type"].endswith("/feature-not-licensed"), r.text
        assert "abac" in r.json()["detail"]


def test_custom_policies_grant_and_forbid_and_are_versioned(world: World, enterprise: TestClient) -> None:
    admin = world.key("acme", "ada")
    analyst = world.key("acme", "ana", "roles=", "team=analytics")
    c = enterprise
    pid = _pipeline(c, admin, tags={"env": "prod"})
    assert c.get(f"/api/v1/pipelines/{pid}", headers=analyst).status_code == 403
    policies = """
@id("analysts-read-pipelines")
permit (principal, action == Action::"pipeline:read", resource is Pipeline)
when { principal.team == "analytics" };

@id("prod-pipelines-are-not-deleted")
forbid (principal, action == Action::"pipeline:delete", resource is Pipeline)
when { resource.tags.contains("env=prod") };
"""
    r = c.put("/api/v1/policies", headers=admin, json={"text": policies, "comment": "analysts; protect prod"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["policy_ids"] == [
        "analysts-read-pipelines", "prod-pipelines-are-not-deleted",
    ]  # fmt: skip
    # In force at once (the version travels with the API key's principal).
    assert c.get(f"/api/v1/pipelines/{pid}", headers=analyst).status_code == 200
    r = c.delete(f"/api/v1/pipelines/{pid}", headers=admin)
    assert r.status_code == 403 and r.json()["reasons"] == ["forbidden by prod-pipelines-are-not-deleted"]
    # Explain says which policy and why.
    me = c.get("/api/v1/me", headers=admin).json()
    ex = c.post("/api/v1/policies/explain", headers=admin, json={
        "principal": {"id": me["id"], "roles": ["admin"]}, "action": "pipeline:delete",
        "resource": {"type": "Pipeline", "id": pid, "tags": ["env=prod"]},
    }).json()  # fmt: skip
    assert (ex["allowed"], ex["reason"], ex["determining"]) == (
        False,
        "forbid",
        ["prod-pipelines-are-not-deleted"],
    )
    assert 'forbid (principal, action == Action::"pipeline:delete"' in ex["text"]
    # A new version replaces the set; the old one stays in the history.
    assert c.put("/api/v1/policies", headers=admin, json={"text": ""}).json()["version"] == 2
    assert c.get(f"/api/v1/pipelines/{pid}", headers=analyst).status_code == 403
    assert c.delete(f"/api/v1/pipelines/{pid}", headers=admin).status_code == 204
    versions = c.get("/api/v1/policies/versions", headers=admin).json()["items"]
    assert [(v["version"], v["comment"]) for v in versions] == [(2, ""), (1, "analysts; protect prod")]
    log = c.get("/api/v1/audit", headers=admin, params={"action": "policy:update"}).json()["items"]
    assert [e["detail"]["version"] for e in log] == [2, 1]


def test_a_custom_permit_all_never_crosses_workspaces(world: World, enterprise: TestClient) -> None:
    a, b = world.key("acme", "ada"), world.key("globex", "gus", "roles=")
    pid = _pipeline(enterprise, a)
    r = enterprise.put(
        "/api/v1/policies", headers=a, json={"text": '@id("all")\npermit (principal, action, resource);'}
    )
    assert r.status_code == 200, r.text
    # acme's permit-all is acme's: globex's principal without roles still sees nothing of acme's
    # (nor, having no role, of its own).
    assert enterprise.get(f"/api/v1/pipelines/{pid}", headers=b).status_code == 404
    assert enterprise.get("/api/v1/pipelines", headers=b).status_code == 403


def test_a_lapsed_license_keeps_custom_forbids_and_drops_custom_permits(world: World) -> None:
    admin = world.key("acme", "ada")
    analyst = world.key("acme", "ana", "roles=", "team=analytics")
    policies = """
@id("analysts-read-pipelines")
permit (principal, action == Action::"pipeline:read", resource is Pipeline)
when { principal.team == "analytics" };

@id("no-deletes")
forbid (principal, action == Action::"pipeline:delete", resource);
"""
    with world.app(world.licenses.token("abac")) as c:
        pid = _pipeline(c, admin)
        assert c.put("/api/v1/policies", headers=admin, json={"text": policies}).status_code == 200
        assert c.get(f"/api/v1/pipelines/{pid}", headers=analyst).status_code == 200
    with world.app(None) as c:
        got = c.get("/api/v1/policies", headers=admin).json()
        assert got["version"] == 1 and got["active"] is False
        assert c.get(f"/api/v1/pipelines/{pid}", headers=analyst).status_code == 403  # permit dropped
        r = c.delete(f"/api/v1/pipelines/{pid}", headers=admin)
        assert r.status_code == 403 and r.json()["reasons"] == ["forbidden by no-deletes"]  # forbid kept


def _pipeline(c: TestClient, h: dict[str, str], *, tags: dict[str, str] | None = None) -> str:
    name = f"c{uuid.uuid4().hex[:8]}"
    r = c.post("/api/v1/connections", headers=h, json={"name": name, "connector": "sqlite",
                                                      "config": {"path": "/tmp/openfuse-gov.db"}})  # fmt: skip
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/pipelines", headers=h, json={
        "name": f"p{uuid.uuid4().hex[:8]}", "source": {"connection": name}, "destination": {"connection": name},
        "streams": [{"name": "orders"}], "tags": tags or {},
    })  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_api_fixture_is_real(world: World) -> None:
    """The app the tests above use is the default one (the policy engine), not a stand-in."""
    from api.auth.policy import PolicyAuthorizer

    with world.app(None) as c:
        assert isinstance(c.app.state.openfuse.authorizer, PolicyAuthorizer)  # type: ignore[attr-defined]


def test_audit_export_is_an_enterprise_feature(world: World, enterprise: TestClient) -> None:
    admin = world.key("acme", "ada")
    with world.app(None) as c:
        r = c.get("/api/v1/audit/export", headers=admin)
        assert r.status_code == 403 and r.json()["reasons"] == ["forbidden by community.license.audit-export"]
    _pipeline(enterprise, admin)
    r = enterprise.get("/api/v1/audit/export", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert int(r.headers["x-openfuse-entries"]) == len(lines) >= 3
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)  # oldest first
    assert {"connection:create", "pipeline:create", "audit:export"} <= {e["action"] for e in lines}
    # Exporting is itself audited (with the denied attempt of the community edition before it).
    outcomes = [(e["action"], e["outcome"]) for e in lines if e["action"] == "audit:export"]
    assert outcomes == [("audit:export", "denied")]
    log = enterprise.get("/api/v1/audit", headers=admin, params={"action": "audit:export"}).json()["items"]
    assert [e["outcome"] for e in log] == ["success", "denied"]


def test_the_governance_bundle_follows_principals_and_policies(world: World, enterprise: TestClient) -> None:
    """What the sync steps decide with: the workspace's policies in force and every principal's
    attributes, rewritten when a pipeline, the policies or a principal change."""
    import yaml

    admin = world.key("acme", "ada")
    _pipeline(enterprise, admin)
    (bundle,) = (make_settings(world.url, world.home).pipelines_dir / "_governance").iterdir()
    zed = world.key("acme", "zed", "team=risk", "clearance=pii")  # after the bundle exists
    people = yaml.safe_load((bundle / "principals.yaml").read_text())["principals"]
    (zed_attrs,) = [p for p in people.values() if p["name"] == "zed"]
    assert zed_attrs == {"name": "zed", "team": "risk", "clearance": "pii", "roles": ["admin"]}
    assert not (bundle / "custom.cedar").exists()
    text = '@id("p")\npermit (principal, action == Action::"pipeline:read", resource);'
    assert enterprise.put("/api/v1/policies", headers=admin, json={"text": text}).status_code == 200
    assert text in (bundle / "custom.cedar").read_text()
    assert zed["Authorization"].split("_")[-1] not in (bundle / "principals.yaml").read_text()
