"""``openfuse cdc run|status|drop|reset``, registered through the ``openfuse.cli`` entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from openfuse_connectors.cdc.config import CdcSettings
    from openfuse_connectors.cdc.sink import ChangeSink

__all__ = ["register"]

PipelineArg = Annotated[Path, typer.Argument(help="The pipeline YAML file.", exists=False)]


def _load(path: Path) -> tuple[CdcSettings, list[ChangeSink]]:
    from openfuse_connectors.cdc.pipeline import build, load_cdc_pipeline
    from openfuse_connectors.errors import ConfigError

    try:
        spec, options = load_cdc_pipeline(path)
        settings, sinks = build(spec, options)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    return settings, list(sinks)


def run(
    pipeline: PipelineArg,
    until_caught_up: Annotated[
        bool, typer.Option(help="Stop once every change committed so far is delivered.")
    ] = False,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Stream the pipeline's changes until SIGTERM/SIGINT (the last acknowledged position is committed)."""
    from openfuse_connectors.cdc.runner import run_cdc
    from openfuse_connectors.errors import ConfigError, OpenFuseError

    settings, sinks = _load(pipeline)
    try:
        summary = run_cdc(settings, sinks, until_caught_up=until_caught_up, max_seconds=max_seconds)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OpenFuseError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{summary.pipeline}: {summary.snapshot_rows} snapshot rows, {summary.changes} changes in "
        f"{summary.transactions} transactions, {summary.commits} commits; position {summary.position}; "
        f"stopped by {summary.stopped_by} after {summary.seconds:.1f}s"
    )


def status(
    pipeline: PipelineArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Slot lag, retained WAL and the committed positions; exit 1 when the health check fails."""
    from openfuse_connectors.cdc.slot import slot_health

    settings, sinks = _load(pipeline)
    health = slot_health(settings)
    positions = {}
    for sink in sinks:
        state = sink.read_state()
        positions[sink.name] = state.lsn if state else None
        sink.close()
    doc = {**health.to_dict(), "committed": positions}
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        for k, v in doc.items():
            typer.echo(f"{k:22} {v}")
    raise typer.Exit(0 if health.ok else 1)


def drop(
    pipeline: PipelineArg,
    force: Annotated[
        bool, typer.Option(help="Also when a runner is streaming (its connection is ended).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Drop the pipeline's slot and publication and forget its positions (the next run re-snapshots)."""
    from openfuse_connectors.cdc.slot import drop_pipeline

    settings, sinks = _load(pipeline)
    if not yes:
        typer.confirm(f"drop slot and publication of {settings.pipeline!r}?", abort=True)
    drop_pipeline(settings, sinks, force=force)
    typer.echo("dropped; the next run takes a new initial snapshot")


def reset(
    pipeline: PipelineArg,
    accept_slot_position: Annotated[
        bool, typer.Option(help="Store the slot's position as committed: the changes in between are skipped.")
    ] = False,
) -> None:
    """Get past a slot that is ahead of the committed position by accepting the gap."""
    from openfuse_connectors.cdc.lsn import format_lsn
    from openfuse_connectors.cdc.slot import reset_position

    if not accept_slot_position:
        typer.echo("error: pass --accept-slot-position (or use `openfuse cdc drop` to re-snapshot)", err=True)
        raise typer.Exit(2)
    settings, sinks = _load(pipeline)
    lsn = reset_position(settings, sinks)
    typer.echo(f"committed position set to the slot's {format_lsn(lsn)}")


def register(app: typer.Typer) -> None:
    """Add ``cdc`` to the ``openfuse`` command."""
    cdc = typer.Typer(no_args_is_help=True, help="Change data capture (PostgreSQL logical decoding).")
    cdc.command("run")(run)
    cdc.command("status")(status)
    cdc.command("drop")(drop)
    cdc.command("reset")(reset)
    app.add_typer(cdc, name="cdc")
