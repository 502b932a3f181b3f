"""ARCHITECTURE.md's import directions and STYLE.md's light import path, enforced."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package -> first-party packages it may import (ARCHITECTURE.md, "The top level").
ALLOWED = {
    "openfuse_connectors": set(),
    "openfuse_policy": {"openfuse_connectors"},
    "openfuse_dagster": {"openfuse_connectors", "openfuse_policy"},
    "api": {"openfuse_connectors", "openfuse_policy"},
}
FIRST_PARTY = set(ALLOWED)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_import_directions(package: str) -> None:
    bad = []
    for f in sorted((REPO / package).rglob("*.py")):
        for mod in imports_of(f) & FIRST_PARTY:
            if mod != package and mod not in ALLOWED[package]:
                bad.append(f"{f.relative_to(REPO)} imports {mod}")
    assert not bad, "imports against ARCHITECTURE.md:\n" + "\n".join(bad)


def test_importing_the_sdk_pulls_in_no_drivers_or_dagster() -> None:
    code = (
        "import sys, json, openfuse_connectors, openfuse_connectors.engine, openfuse_connectors.registry;"
        "openfuse_connectors.registry.get_registry();"
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    loaded = set(json.loads(out.stdout))
    heavy = {
        "psycopg",
        "adbc_driver_postgresql",
        "adbc_driver_manager",
        "duckdb",
        "dagster",
        "confluent_kafka",
        "fsspec",
        "sqlalchemy",
        "fastapi",
    }
    assert not (loaded & heavy), f"importing the SDK loaded {sorted(loaded & heavy)}"
