"""``openfuse.policy`` extensions from a separately installed distribution: an attribute provider
answers for a pipeline owner the governance folder does not list, a policy store adds a permit,
and an entry point that is neither is reported, not fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "openfuse_example_plugin"

SCRIPT = """
import json, sys
from openfuse_connectors import PipelineSpec
from openfuse_policy.dataplane import DataPlaneGate, StreamDenied
from openfuse_policy.extensions import load_extensions
from openfuse_policy.license import LicenseState

ext = load_extensions()
gate = DataPlaneGate.from_dir(sys.argv[1], LicenseState(edition="enterprise", features=frozenset({"abac"})))
def spec(owner):
    return PipelineSpec.model_validate({
        "name": "people", "owner": owner,
        "source": {"connector": "postgres", "config": {}}, "destination": {"connector": "duckdb", "config": {}},
        "streams": [{"name": "public.staff"}]})
out = {"providers": sorted(ext.attribute_providers), "stores": sorted(ext.policy_stores), "broken": ext.broken}
g = gate.check(spec("hr-ann"), spec("hr-ann").streams[0])
out["allowed_by"] = sorted(set(g.read.determining) | set(g.write.determining))
try:
    gate.check(spec("nobody"), spec("nobody").streams[0])
except Exception as e:
    out["unknown"] = str(e)
print(json.dumps(out))
"""


def test_extensions_from_an_installed_distribution(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    gov = tmp_path / "governance"
    gov.mkdir()  # no principals.yaml, no .cedar: everything comes from the extensions
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(gov)],
        check=True, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(target)},
    )  # fmt: skip
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["providers"] == ["hr"] and info["stores"] == ["store"]
    assert "neither an attribute provider" in info["broken"]["not_an_extension"]
    # hr-ann is a viewer (community role: read) from the HR directory; the store's policy lets the
    # team write.
    assert info["allowed_by"] == ["community.role.viewer", "example-store.people-write"]
    assert "owner 'nobody' is not a known principal" in info["unknown"]
