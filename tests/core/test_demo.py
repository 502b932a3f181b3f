"""`make demo`'s pipeline: runs on the embedded defaults, loads every CSV row, then moves nothing."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from openfuse_connectors.demo import DATA


def test_demo_loads_everything_then_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "OPENFUSE_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "openfuse_connectors.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    import duckdb

    with duckdb.connect(str(tmp_path / "demo" / "warehouse.duckdb"), read_only=True) as db:
        for f in sorted(DATA.glob("*.csv")):
            with f.open(newline="", encoding="utf-8") as fh:
                expected = sum(1 for _ in csv.reader(fh)) - 1
            [(n,)] = db.sql(f"SELECT count(*) FROM chinook.{f.stem}").fetchall()
            assert n == expected, f.stem
        [(runs,)] = db.sql("SELECT count(*) FROM chinook._openfuse_state").fetchall()
        assert runs == 6
    # The second run's table shows every stream with 0 rows read and written.
    second = out.stdout.split("2. Second run")[1].split("3. Query")[0]
    lines = [ln for ln in second.splitlines() if "incremental_" in ln]
    assert len(lines) == 6
    assert all(ln.split("│")[3].strip() == "0" and ln.split("│")[4].strip() == "0" for ln in lines)
    assert "USA" in out.stdout
