"""`openfuse cdc run|status|drop|reset` on a pipeline file with a `cdc:` block, and `snapshot: never`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from cdc_support import consume, pg, rows
from typer.testing import CliRunner

from openfuse_connectors.cdc.cli import register


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("noop")(lambda: None)  # a group needs one command of its own to keep subcommands
    register(a)
    return a


def test_cli_runs_reports_and_drops_a_pipeline(
    source_db: str, pg_db: str, kafka_cluster: str, prefix: str, tmp_path: Path
) -> None:
    pg(source_db, "CREATE TABLE orders (id int PRIMARY KEY, s text)", "INSERT INTO orders VALUES (1, 'a')")
    spec = {
        "name": "cli_cdc",
        "source": {"connector": "postgres", "config": {"dsn": source_db}},
        "destination": {"connector": "postgres", "config": {"dsn": pg_db, "schema": "mirror"}},
        "cdc": {"snapshot": "never", "topic_prefix": prefix, "kafka": {"bootstrap_servers": [kafka_cluster]}},
        "streams": [{"name": "public.orders", "mode": "cdc", "destination_table": "orders_copy"}],
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    cli = CliRunner()
    r = cli.invoke(app(), ["cdc", "run", str(path), "--until-caught-up"])
    assert r.exit_code == 0, r.output
    assert "0 snapshot rows" in r.output
    pg(source_db, "INSERT INTO orders VALUES (2, 'b')", "UPDATE orders SET s = 'z' WHERE id = 1")
    r = cli.invoke(app(), ["cdc", "run", str(path), "--until-caught-up"])
    assert r.exit_code == 0, r.output
    # snapshot: never - row 1 existed before the slot, so only its update arrives (as an upsert).
    assert rows(pg_db, "SELECT id, s FROM mirror.orders_copy ORDER BY id") == [(1, "z"), (2, "b")]
    assert sorted(m.op for m in consume(kafka_cluster, f"{prefix}.public.orders") if m.value) == ["c", "u"]

    r = cli.invoke(app(), ["cdc", "status", str(path), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["exists"] and doc["ok"] and doc["committed"]["postgres"] == doc["committed"]["kafka"]

    r = cli.invoke(app(), ["cdc", "reset", str(path)])
    assert r.exit_code == 2 and "--accept-slot-position" in r.output
    r = cli.invoke(app(), ["cdc", "drop", str(path), "--yes"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app(), ["cdc", "status", str(path)])
    assert r.exit_code == 1 and "does not exist" in r.output

    bad = dict(spec, cdc={"deletes": "sometimes"})
    path.write_text(yaml.safe_dump(bad))
    r = cli.invoke(app(), ["cdc", "run", str(path)])
    assert r.exit_code == 2 and "cdc.deletes" in r.output
