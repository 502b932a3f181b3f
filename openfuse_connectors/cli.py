"""The `openfuse` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from openfuse_connectors.errors import OpenFuseError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="OpenFuse: move tables fast and exactly once."
)
connectors_app = typer.Typer(no_args_is_help=True, help="Installed connectors.")
app.add_typer(connectors_app, name="connectors")

out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

PipelineArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", exists=False)]


def _fail(e: BaseException) -> typer.Exit:
    err.print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
    return typer.Exit(2)


@app.command()
def run(
    pipeline: PipelineArg,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Reload every stream from scratch.")
    ] = False,
    stream: Annotated[
        list[str] | None, typer.Option("--stream", "-s", help="Only these streams (repeatable).")
    ] = None,
) -> None:
    """Run a pipeline in this process and print a summary per stream."""
    from openfuse_connectors.engine import StreamResult, run_pipeline
    from openfuse_connectors.spec import load_pipeline

    try:
        spec = load_pipeline(pipeline)
    except OpenFuseError as e:
        raise _fail(e) from None
    selected = [s for s in spec.streams if not stream or s.name in stream]
    if stream and not selected:
        raise _fail(OpenFuseError(f"none of the streams {stream} is in pipeline {spec.name!r}"))
    results: list[StreamResult] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    ) as prog:
        tasks = {s.name: prog.add_task(s.name, total=None, rows=0) for s in selected}

        def on_progress(name: str, rows: int) -> None:
            prog.update(tasks[name], rows=rows)

        def on_result(r: StreamResult) -> None:
            prog.update(
                tasks[r.stream],
                total=1,
                completed=1,
                rows=r.rows_read,
                description=f"{r.stream} {'[green]ok' if r.ok else '[red]failed'}",
            )
            results.append(r)

        try:
            run_pipeline(
                spec, full_refresh=full_refresh, streams=stream, progress=on_progress, on_result=on_result
            )
        except OpenFuseError as e:
            raise _fail(e) from None
    table = Table(title=f"pipeline {spec.name}", title_justify="left")
    for col, just in (
        ("stream", "left"),
        ("mode", "left"),
        ("rows read", "right"),
        ("rows written", "right"),
        ("rows quarantined", "right"),
        ("seconds", "right"),
        ("status", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in results:
        status = "ok" + (" (pass-through)" if r.passthrough else "") if r.ok else "FAILED"
        table.add_row(
            r.stream,
            r.mode,
            f"{r.rows_read:,}",
            f"{r.rows_written:,}",
            f"{r.rows_quarantined:,}",
            f"{r.seconds:.2f}",
            status,
        )
    out.print(table)
    for r in results:
        for change in r.schema_changes:
            out.print(f"  schema change in {r.stream}: {change}", highlight=False)
        if r.rows_quarantined:
            out.print(
                f"  {r.rows_quarantined} row(s) of {r.stream} quarantined in table _openfuse_quarantine",
                highlight=False,
            )
        if r.error:
            err.print(f"[red]{r.stream}:[/] {r.error}", highlight=False)
    if any(not r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def check(pipeline: PipelineArg) -> None:
    """Test the connections of a pipeline's source and destination."""
    from openfuse_connectors.registry import get_registry
    from openfuse_connectors.spec import load_pipeline

    try:
        spec = load_pipeline(pipeline)
        reg = get_registry()
        src = reg.extractor(spec.source.connector, spec.source.config)
        dst = reg.loader(spec.destination.connector, spec.destination.config)
    except OpenFuseError as e:
        raise _fail(e) from None
    failed = False
    for role, obj in (("source", src), ("destination", dst)):
        try:
            obj.check()
            out.print(f"[green]ok[/]   {role} {obj.name}")
        except OpenFuseError as e:
            failed = True
            out.print(f"[red]fail[/] {role} {obj.name}: {e}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def discover(
    pipeline: PipelineArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """List the streams the pipeline's source offers, with columns, keys and cursor candidates."""
    from openfuse_connectors.registry import get_registry
    from openfuse_connectors.spec import load_pipeline

    try:
        spec = load_pipeline(pipeline)
        src = get_registry().extractor(spec.source.connector, spec.source.config)
        catalog = src.discover()
    except OpenFuseError as e:
        raise _fail(e) from None
    if as_json:
        sys.stdout.write(json.dumps([s.to_json() for s in catalog], indent=2) + "\n")
        return
    for s in catalog:
        t = Table(title=s.name, title_justify="left")
        t.add_column("column")
        t.add_column("arrow type")
        t.add_column("source type")
        t.add_column("flags")
        for c in s.to_json()["columns"]:
            flags = [
                x
                for x, on in (
                    ("pk", c["name"] in s.primary_key),
                    ("cursor?", c["name"] in s.cursor_candidates),
                    ("null", c["nullable"]),
                )
                if on
            ]
            t.add_row(c["name"], c["type"], c["native_type"] or "", " ".join(flags))
        out.print(t)


@connectors_app.command("list")
def connectors_list() -> None:
    """List installed connectors, and plugins that failed to load."""
    from openfuse_connectors.registry import get_registry

    reg = get_registry()
    t = Table(title="connectors", title_justify="left")
    for c in ("name", "kinds", "license feature", "from", "description"):
        t.add_column(c)
    for name in sorted(reg.connectors):
        conn = reg.connectors[name]
        t.add_row(
            name,
            ", ".join(conn.kinds),
            conn.required_feature or "-",
            reg.origins.get(name, ""),
            conn.description,
        )
    out.print(t)
    for b in reg.broken.values():
        out.print(
            f"[red]broken plugin[/] {b.name} ({b.value}, from {b.distribution}): {b.error}", highlight=False
        )


def _load_command_plugins() -> None:
    """Commands from the other packages (`openfuse dev`, `openfuse api`, `openfuse policy` ...).

    They register through the ``openfuse.cli`` entry-point group, so this SDK package never
    imports Dagster, the API or the policy engine (ARCHITECTURE.md's import directions). Each entry
    point is a ``register(app: typer.Typer) -> None`` function; one that fails to load is reported
    and the other commands keep working.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="openfuse.cli"):
        try:
            ep.load()(app)
        except Exception as e:  # a broken plugin must not take the CLI down
            err.print(
                f"[yellow]warning:[/] commands from {ep.name!r} ({ep.value}) are unavailable: {e}",
                highlight=False,
            )


_load_command_plugins()


def main() -> None:  # pragma: no cover - console entry
    app()
