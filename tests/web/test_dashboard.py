"""The operator dashboard (web/) end to end: the production build (`next start`) in front of a
real ``openfuse api`` process, driven in Debian's Chromium by web/e2e/dashboard.e2e.mjs
(playwright-core). Two installations: the community edition (no license) and an enterprise one
(a license signed by a key pair made here). Nothing is mocked; Dagster is the one service not
running (its URL is a port nothing listens on), which is what the runs pages must survive.

The browser script records what each page showed; the assertions are here. Screenshots go to
the test's tmp dir, and to docs/dashboard-*.png when OPENFUSE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from web_support import (
    CHROMIUM,
    PIPELINES,
    REPO,
    WEB,
    Installation,
    build,
    installation,
    license_env,
    require_toolchain,
    rest,
)

pytestmark = pytest.mark.slow

VALID_POLICY = """\
@id("analysts-read-pipelines")
permit (principal, action == Action::"pipeline:read", resource is Pipeline)
when { principal.team == "analytics" };

@id("prod-pipelines-are-not-deleted")
forbid (principal, action == Action::"pipeline:delete", resource is Pipeline)
when { resource.tags.contains("env=prod") };
"""
# Line 6 is the `when` naming an attribute principals do not have.
INVALID_POLICY = """\
@id("ok")
permit (principal, action == Action::"pipeline:read", resource);

@id("bad")
permit (principal, action == Action::"pipeline:read", resource)
when { principal.shoe_size > 3 };
"""


@pytest.fixture(scope="session")
def node() -> str:
    return require_toolchain()


@pytest.fixture(scope="session")
def built(node: str) -> None:
    build(node)


def _bad_key_detail(api_url: str) -> str:
    """What the API itself says to a key it does not know (the login page must show it)."""
    req = urllib.request.Request(
        f"{api_url}/api/v1/me", headers={"Authorization": f"Bearer of_000000000000_{'x' * 43}"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    with e.value:
        return str(json.loads(e.value.read())["detail"])


def run_browser(node: str, inst: Installation, tmp: Path, edition: str) -> dict[str, Any]:
    shots = tmp / "shots"
    shots.mkdir()
    first = inst.pipelines[PIPELINES[0]["name"]]
    config = {
        "baseUrl": inst.dashboard_url,
        "edition": edition,
        "key": inst.keys["admin"],
        "viewerKey": inst.keys["viewer"] if edition == "enterprise" else None,
        "pipeline": {"id": first["id"], "name": first["name"]},
        "tag": "team=data",
        "secrets": inst.secrets,
        "shotDir": str(shots),
        "chromium": str(CHROMIUM),
        "validPolicy": VALID_POLICY,
        "validComment": "analysts read; prod pipelines stay",
        "invalidPolicy": INVALID_POLICY,
        "explain": {
            "action": "pipeline:delete",
            "resourceType": "Pipeline",
            "resourceId": first["id"],
            "resourceExtra": '{"tags": ["env=prod"]}',
        },
    }
    path = tmp / "e2e-config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [node, str(WEB / "e2e" / "dashboard.e2e.mjs"), str(path)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(
            f"the browser script printed no result ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    failed = {name: s.get("error") for name, s in result["steps"].items() if not s["ok"]}
    assert not failed, (
        f"browser steps failed: {json.dumps(failed, indent=1)}\nnext/API logs:\n{inst.logs()[-4000:]}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result["shots"] = shots
    return result


def assert_common(result: dict[str, Any], inst: Installation) -> dict[str, Any]:
    """What both editions must show; returns the steps."""
    s = result["steps"]
    base = inst.dashboard_url
    assert s["unauthenticated_redirect"]["url"] == f"{base}/login"
    bad = s["login_bad_key"]
    assert bad["url"] == f"{base}/login" and bad["problemType"] == "unauthenticated"
    assert bad["detail"] == _bad_key_detail(inst.api_url)

    login = s["login"]
    assert login["url"] == f"{base}/"
    assert (login["workspace"], login["principal"], login["roles"]) == ("acme", "ada", "admin")
    assert set(login["features"]) == {"abac", "masking", "audit_export"}
    masking = login["features"]["masking"]["text"]  # the overview says what masking enables
    assert "masking" in masking and "tagged columns" in masking

    # The key is in an httpOnly, SameSite=Strict cookie: page scripts cannot read it.
    cookie = s["session_cookie"]
    assert cookie["documentCookie"] == ""
    (session,) = [c for c in cookie["cookies"] if c["name"] == "openfuse_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict" and session["path"] == "/"
    assert session["secure"] is False  # served over plain http here; Secure behind https

    conns = s["connections"]
    assert set(conns["names"]) == {"shop", "warehouse"}
    assert "secret set" in conns["text"] and inst.secrets[0] not in conns["text"]

    names = [p["name"] for p in PIPELINES]
    pages = s["pipelines_pages"]
    assert len(pages["first"]) == 2 and pages["pages"] == 2
    assert sorted(pages["seen"]) == sorted(names)
    tagged = s["pipelines_tag_filter"]
    assert "tag=team%3Ddata" in tagged["url"] and sorted(tagged["names"]) == [
        "events_archive",
        "orders_to_warehouse",
    ]

    detail = s["pipeline_detail"]
    assert detail["name"] == "orders_to_warehouse"
    orders, customers = detail["streams"]
    assert (orders["name"], orders["mode"], orders["cursor"], orders["primaryKey"]) == (
        "orders", "incremental_dedupe", "updated_at", "id",
    )  # fmt: skip
    assert "updated_at = 2026-11-01 12:00:00.000000" in orders["state"]
    assert (customers["name"], customers["mode"], customers["state"]) == (
        "customers",
        "full_refresh_overwrite",
        "no state yet",
    )
    assert detail["recentRunsProblem"] == "dagster-unavailable"

    run_now = s["run_now"]
    assert run_now["problemType"] == "dagster-unavailable"
    assert "The run was not launched" in run_now["text"] and "127.0.0.1:9" in run_now["text"]

    runs = s["runs_page"]
    assert runs["status"] == 503 and runs["problemType"] == "dagster-unavailable"
    assert "Dagster unavailable" in runs["text"] and "Dagster is unreachable" in runs["text"]
    assert runs["afterNav"] == f"{base}/pipelines"

    audit = s["audit"]
    assert {"action": "pipeline:run", "outcome": "failure"} in audit["runRows"]  # the launch Dagster refused
    assert {"connection:create", "pipeline:create"} <= set(audit["actions"])

    out = s["logout"]
    assert out["afterLogout"] == f"{base}/login" and "openfuse_session" not in out["cookies"]
    assert out["revisit"] == f"{base}/login"

    # No response of the dashboard (HTML, RSC payloads, action results) and no log has the key.
    assert result["leaks"] == [] and result["scanned"] > 20
    logs = inst.logs()
    for key in inst.keys.values():
        assert key not in logs
    assert s["console"]["errors"] == []
    return s


@pytest.mark.timeout(400)
def test_dashboard_community_edition(node: str, built: None, tmp_path: Path) -> None:
    with installation(tmp_path) as inst:
        result = run_browser(node, inst, tmp_path, "community")
        s = assert_common(result, inst)
        api_log = inst.processes[0].tail(10**7)

    login = s["login"]
    assert login["edition"] == "Community edition" and "no license installed" in login["licenseReason"]
    assert login["customer"] is None and login["licenseWarning"] is None
    assert not any(f["granted"] for f in login["features"].values())

    nav = {e["href"]: e for e in s["nav"]["entries"]}
    assert (
        nav["/policies"]["locked"] and nav["/policies"]["lockIcon"] and nav["/policies"]["feature"] == "abac"
    )
    assert nav["/audit/export"]["locked"] and nav["/audit/export"]["feature"] == "audit_export"

    locked = s["locked_policies"]
    assert locked["status"] == 200 and locked["feature"] == "abac"
    assert "Enterprise feature" in locked["text"] and "custom ABAC policies (Cedar)" in locked["text"]
    assert locked["editors"] == 0 and locked["versions"] == 0
    assert (s["locked_explain"]["feature"], s["locked_explain"]["forms"]) == ("abac", 0)
    export = s["locked_export"]
    assert export["feature"] == "audit_export" and export["forms"] == 0
    assert export["downloadUrl"] == f"{inst.dashboard_url}/audit/export"
    # The locked routes made no call for the feature's content: the API never saw one.
    assert '"GET /api/v1/features' in api_log, "the API's access log is not where this test looks"
    assert "/api/v1/policies" not in api_log and "/api/v1/audit/export" not in api_log


@pytest.mark.timeout(400)
def test_dashboard_enterprise_edition(node: str, built: None, tmp_path: Path) -> None:
    with installation(tmp_path, license=license_env(tmp_path, "Acme Corp", expires_in_days=20)) as inst:
        result = run_browser(node, inst, tmp_path, "enterprise")
        s = assert_common(result, inst)
        versions = rest(inst.api_url, inst.keys["admin"], "GET", "/api/v1/policies/versions")["items"]

    login = s["login"]
    assert login["edition"] == "Enterprise edition" and login["customer"] == "Acme Corp"
    assert "renew soon" in login["licenseWarning"]  # 20 days left
    assert all(f["granted"] for f in login["features"].values())
    assert not any(e["locked"] or e["lockIcon"] for e in s["nav"]["entries"])

    saved = s["policies_save"]
    assert saved["before"] == 0 and "Stored version 1" in saved["saved"] and saved["inForce"] == 1
    (v1,) = saved["history"]
    assert v1["version"] == 1 and "analysts read; prod pipelines stay" in v1["text"]

    invalid = s["policies_invalid"]
    assert invalid["problemType"] == "policy-invalid" and "nothing was stored" in invalid["problem"]
    (diag,) = invalid["diagnostics"]
    assert diag["line"] == "6" and diag["policy"] == "bad" and "shoe_size" in diag["message"]
    assert invalid["editorText"] == INVALID_POLICY  # kept in the editor, to be fixed
    assert invalid["inForce"] == 1 and invalid["history"] == [1] and invalid["inForceAfterReload"] == 1
    assert [v["version"] for v in versions] == [1]  # the API agrees: nothing new stored

    explain = s["explain"]
    assert explain["allowed"] is False and "prod-pipelines-are-not-deleted" in explain["text"]

    export = s["audit_export"]
    assert export["failure"] is None and export["filename"].endswith(".ndjson")
    raw = Path(export["file"]).read_text()
    entries = [json.loads(line) for line in raw.splitlines()]
    assert len(entries) >= 8
    updates = [(e["outcome"], e["detail"].get("version")) for e in entries if e["action"] == "policy:update"]
    assert ("success", 1) in updates and any(o == "failure" for o, _ in updates), updates
    assert {"connection:create", "pipeline:create", "pipeline:run"} <= {e["action"] for e in entries}
    assert all(k not in raw for k in inst.keys.values())
    assert export["refusedUrl"] == f"{inst.dashboard_url}/audit/export?since=yesterday&failed=1"
    assert export["refusedType"] == "validation-error" and "The export did not start" in export["refused"]
    assert "since" in export["refused"]

    # A viewer: the UI shows the pages, the API refuses what the role does not allow (403).
    viewer = s["viewer_forbidden"]
    assert viewer["status"] == 403 and viewer["problemType"] == "forbidden"
    assert (
        "may not audit:list" in viewer["text"]
        and "no policy permits audit:read (default deny)" in viewer["text"]
    )
    assert viewer["policiesStatus"] == 403 and viewer["editors"] == 0

    shots = result["shots"]
    assert (shots / "overview-enterprise.png").stat().st_size > 10_000
    assert (shots / "policies-enterprise.png").stat().st_size > 10_000
    if os.environ.get("OPENFUSE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shots / "overview-enterprise.png", REPO / "docs" / "dashboard-overview.png")
        shutil.copyfile(shots / "policies-enterprise.png", REPO / "docs" / "dashboard-policies.png")


def test_generated_api_client_is_current(node: str) -> None:
    """web/lib/api/schema.d.ts is what openapi-typescript makes of api/openapi.snapshot.json now."""
    cli = WEB / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
    proc = subprocess.run(
        [node, str(cli), str(REPO / "api" / "openapi.snapshot.json")],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    committed = (WEB / "lib" / "api" / "schema.d.ts").read_text()
    assert proc.stdout == committed, (
        "web/lib/api/schema.d.ts is stale: the API's OpenAPI document changed. Run `npm run gen:api` in web/ "
        "(and fix what no longer type-checks)."
    )
