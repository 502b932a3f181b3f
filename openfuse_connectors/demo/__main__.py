"""Run the demo: copy the bundled CSV files, load them into DuckDB, run again, show the result."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from openfuse_connectors.demo import DATA, PIPELINE


def main() -> int:
    from openfuse_connectors.cli import app

    home = Path(os.environ.get("OPENFUSE_HOME") or ".openfuse").resolve()
    demo = home / "demo"
    source, warehouse = demo / "source", demo / "warehouse.duckdb"
    # Start from scratch every time, so the two runs below always tell the same story.
    shutil.rmtree(demo, ignore_errors=True)
    source.mkdir(parents=True)
    for f in sorted(DATA.glob("*.csv")):
        shutil.copy2(f, source / f.name)
    os.environ["OPENFUSE_DEMO_SOURCE"] = str(source)
    os.environ["OPENFUSE_DEMO_WAREHOUSE"] = str(warehouse)

    con = Console(width=None if sys.stdout.isatty() else 120)
    con.rule("[bold]OpenFuse demo: Chinook CSV files -> DuckDB (embedded, no server)")
    con.print(f"pipeline: {PIPELINE}\nsource:   {source}\ntarget:   {warehouse}\n", highlight=False)
    con.print("[bold]1. First run[/]: every stream loads from scratch.")
    first = _run(app, ["run", str(PIPELINE)])
    con.print("\n[bold]2. Second run[/]: incremental, nothing changed, so no file is read and 0 rows move.")
    second = _run(app, ["run", str(PIPELINE)])
    if first or second:
        con.print("[red]the demo pipeline failed[/]")
        return 1

    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as db:
        rows = db.sql(
            """SELECT c.country, count(DISTINCT i.invoice_id) AS invoices, round(sum(l.unit_price * l.quantity), 2) AS revenue
               FROM chinook.invoice_line l JOIN chinook.invoice i USING (invoice_id)
               JOIN chinook.customer c USING (customer_id)
               GROUP BY 1 ORDER BY revenue DESC LIMIT 5"""
        ).fetchall()
    con.print("\n[bold]3. Query the warehouse[/]: top countries by revenue")
    t = Table()
    for col in ("country", "invoices", "revenue"):
        t.add_column(col, justify="left" if col == "country" else "right")
    for country, invoices, revenue in rows:
        t.add_row(str(country), str(invoices), f"{revenue:,.2f}")
    con.print(t)
    con.print(
        f"\nThe warehouse is [bold]{warehouse}[/] (schema chinook). Try:\n"
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.sql('SHOW ALL TABLES', connection=duckdb.connect('{warehouse}')))\"\n"
        f"  touch {source}/customer.csv && OPENFUSE_DEMO_SOURCE={source} OPENFUSE_DEMO_WAREHOUSE={warehouse} "
        f".venv/bin/openfuse run {PIPELINE}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _run(app: object, args: list[str]) -> int:
    try:
        app(args, standalone_mode=False)  # type: ignore[operator]
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # typer.Exit and friends carry the exit code
        code = getattr(e, "exit_code", None)
        if code is None:
            raise
        return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
