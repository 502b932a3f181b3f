"""The `openfuse` command line, as a user runs it: exit codes, summary, errors without secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OPENFUSE = str(Path(sys.executable).parent / "openfuse")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENFUSE, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "orders.csv").write_text("id,amount\n1,1.5\n2,2\n3,2.5\n")
    (src / "customers.csv").write_text("id,name\n1,ann\n")
    p = tmp_path / "p.yaml"
    p.write_text(
        f"""name: cli_test
source: {{connector: files, config: {{path: "{src}"}}}}
destination: {{connector: duckdb, config: {{path: "{tmp_path / "w.duckdb"}"}}}}
schema_drift: quarantine
streams:
  - {{name: orders, mode: full_refresh_overwrite}}
  - {{name: customers, mode: incremental_append, cursor_field: _modified_at}}
"""
    )
    return p


def test_run_prints_a_summary_and_exits_0(pipeline: Path, tmp_path: Path) -> None:
    out = cli("run", str(pipeline))
    assert out.returncode == 0, out.stderr
    # Now a value that does not fit the loaded double column: quarantined, not dropped or widened.
    (tmp_path / "src" / "orders.csv").write_text("id,amount\n1,1.5\n2,oops\n3,2.5\n")
    out = cli("run", str(pipeline))
    assert out.returncode == 0, out.stderr
    assert "orders" in out.stdout and "customers" in out.stdout
    row = next(ln for ln in out.stdout.splitlines() if "│ orders" in ln)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    # stream, mode, read, written, quarantined, seconds, status.
    assert cells[:5] == ["orders", "full_refresh_overwrite", "3", "2", "1"]
    assert "quarantined in table _openfuse_quarantine" in out.stdout


def test_failing_stream_exits_1_and_others_still_run(pipeline: Path, tmp_path: Path) -> None:
    text = pipeline.read_text().replace("- {name: orders,", "- {name: nosuchfile,")
    pipeline.write_text(text)
    out = cli("run", str(pipeline))
    assert out.returncode == 1
    assert "FAILED" in out.stdout and "nosuchfile" in out.stderr
    assert next(ln for ln in out.stdout.splitlines() if "│ customers" in ln).split("│")[-2].strip() == "ok"


def test_bad_pipeline_exits_2_naming_file_and_field(pipeline: Path) -> None:
    pipeline.write_text(pipeline.read_text().replace("full_refresh_overwrite", "overwrite_please"))
    out = cli("run", str(pipeline))
    assert out.returncode == 2
    assert str(pipeline) in out.stderr and "streams[0:orders].mode" in out.stderr.replace("\n", "")


def test_unknown_connector_is_named(pipeline: Path) -> None:
    pipeline.write_text(pipeline.read_text().replace("connector: duckdb", "connector: duckdbb"))
    out = cli("check", str(pipeline))
    assert out.returncode == 2 and "unknown connector 'duckdbb'" in out.stderr


def test_check_reports_unreachable_server_without_the_password(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        """name: unreachable
source: {connector: postgres, config: {dsn: "postgresql://bob:${PGPW}@127.0.0.1:1/shop", connect_timeout: 2}}
destination: {connector: duckdb, config: {path: "x.duckdb"}}
streams: [{name: public.orders}]
"""
    )
    out = cli("check", str(p), env={"PGPW": "pa55-w0rd-secret"})
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "fail" in text and "port=1" in text and "shop" in text
    assert "pa55-w0rd-secret" not in text


def test_discover_json_lists_streams(pipeline: Path) -> None:
    out = cli("discover", str(pipeline), "--json")
    assert out.returncode == 0, out.stderr
    streams = {s["name"]: s for s in json.loads(out.stdout)}
    assert {"orders", "customers"} <= set(streams)
    assert "_modified_at" in streams["orders"]["cursor_candidates"]


def test_connectors_list_shows_builtins() -> None:
    out = cli("connectors", "list")
    assert out.returncode == 0
    for name in ("postgres", "files", "duckdb", "sqlite"):
        assert name in out.stdout
