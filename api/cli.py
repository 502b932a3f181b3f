"""``openfuse api`` and ``openfuse admin ...``, registered through the ``openfuse.cli`` entry point.

FastAPI, uvicorn and SQLAlchemy are imported inside the commands, so ``openfuse --help`` and the
connector commands stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from api.settings import Settings

__all__ = ["register"]


def _settings() -> Settings:
    from pydantic import ValidationError

    from api.settings import Settings

    try:
        return Settings()
    except ValidationError as e:
        typer.echo(f"error: invalid settings: {e.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default OPENFUSE_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default OPENFUSE_API_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default OPENFUSE_API_WORKERS).")
    ] = None,
) -> None:
    """Serve the REST API with uvicorn (in dev, migrating the metadata DB first)."""
    import uvicorn

    from api.migrate import upgrade
    from api.settings import Environment

    settings = _settings()
    if settings.environment is Environment.DEV:
        upgrade(settings.db_url)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        proxy_headers=True,
    )


def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Upgrade the metadata DB schema (Alembic) to ``revision``."""
    from api.migrate import upgrade

    settings = _settings()
    upgrade(settings.db_url, revision)
    typer.echo(f"metadata database upgraded to {revision}", err=True)


def _refresh_governance(engine: Any, settings: Any, workspace: str) -> None:
    """The workspace's principals changed: rewrite its governance bundle for the sync steps when it
    has one (the API writes it with the workspace's first pipeline)."""
    from sqlmodel import Session, select

    from api.models.workspace import Workspace
    from api.pipeline_export import GOVERNANCE_DIR, PipelineExporter

    exporter = PipelineExporter(settings.pipelines_dir.expanduser().resolve(), None)
    with Session(engine) as session:
        ws = session.exec(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is not None and (exporter.folder / GOVERNANCE_DIR / str(ws.id)).is_dir():
            exporter.governance_after_commit(session, ws.id)


def create_key(
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace name (created if missing).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Principal name (created if missing).")],
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            "-a",
            help="Principal attribute key=value (repeatable); roles=admin,editor is a list. A new "
            "principal without roles gets roles=admin.",
        ),
    ] = None,
) -> None:
    """Create an API key for a principal and print it once."""
    from api.admin import NotMigratedError, create_api_key, parse_attributes
    from api.db import create_db_engine

    try:
        attributes = parse_attributes(attr or [])
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--attr") from None
    settings = _settings()
    engine = create_db_engine(settings)
    try:
        token = create_api_key(engine, workspace=workspace, name=name, attributes=attributes)
        _refresh_governance(engine, settings, workspace)
    except NotMigratedError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(token)
    typer.echo(
        f"API key for {name!r} in workspace {workspace!r} printed above; it is not stored and will not be shown again.",
        err=True,
    )


def secrets_env(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (created with mode 0600).")],
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Only this workspace's connections.")
    ] = None,
) -> None:
    """Write the Dagster processes' secret environment (OPENFUSE_SECRET_*=value) to a 0600 file.

    For an EnvironmentFile (systemd), an env_file (Compose) or a Kubernetes Secret. It holds the
    connections' secrets in clear: keep it where only the Dagster processes can read it.
    """
    from sqlalchemy import inspect
    from sqlmodel import Session, select

    from api.admin import NotMigratedError
    from api.crypto import SecretBox
    from api.db import create_db_engine
    from api.models.workspace import Workspace
    from api.pipeline_export import secret_environment

    settings = _settings()
    engine = create_db_engine(settings)
    try:
        if not inspect(engine).has_table("connection"):
            typer.echo(f"error: {NotMigratedError()}", err=True)
            raise typer.Exit(2)
        with Session(engine) as session:
            ws_id = None
            if workspace is not None:
                ws = session.exec(select(Workspace).where(Workspace.name == workspace)).first()
                if ws is None:
                    typer.echo(f"error: no workspace {workspace!r}", err=True)
                    raise typer.Exit(2)
                ws_id = ws.id
            env = secret_environment(session, SecretBox(settings.encryption_secret()), workspace_id=ws_id)
    finally:
        engine.dispose()
    bad = sorted(k for k, v in env.items() if "\n" in v or "\r" in v)
    if bad:
        typer.echo(f"error: secrets with line breaks cannot go in an env file: {bad}", err=True)
        raise typer.Exit(2)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{k}={v}\n" for k, v in sorted(env.items()))
    typer.echo(f"wrote {len(env)} secret variable(s) to {output}", err=True)


def export_pipelines() -> None:
    """Write every pipeline's file into OPENFUSE_PIPELINES_DIR, remove stale ones, reload Dagster."""
    from sqlmodel import Session

    from api.db import create_db_engine
    from api.errors import Problem
    from api.orchestrator import DagsterClient
    from api.pipeline_export import PipelineExporter

    settings = _settings()
    engine = create_db_engine(settings)
    client = DagsterClient(
        settings.dagster_graphql_url,
        location=settings.dagster_location,
        repository=settings.dagster_repository,
        timeout=settings.dagster_timeout,
    )
    exporter = PipelineExporter(settings.pipelines_dir.expanduser().resolve(), client)
    try:
        with Session(engine) as session:
            written, removed, failed = exporter.reconcile(session)
        for job, reason in failed.items():
            typer.echo(f"not exported: {job}: {reason}", err=True)
        typer.echo(f"{len(written)} written, {len(removed)} removed, {len(failed)} failed", err=True)
        try:
            exporter.reload_now()
        except Problem as e:
            typer.echo(f"warning: Dagster was not reloaded: {e.detail}", err=True)
    finally:
        client.close()
        engine.dispose()
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``api`` and ``admin`` to the ``openfuse`` command."""
    app.command("api")(serve)
    admin = typer.Typer(
        no_args_is_help=True,
        help="Administer the API: schema migrations, API keys, and what Dagster gets (pipeline files, secrets).",
    )
    admin.command("migrate")(migrate)
    admin.command("create-key")(create_key)
    admin.command("secrets-env")(secrets_env)
    admin.command("export-pipelines")(export_pipelines)
    app.add_typer(admin, name="admin")
