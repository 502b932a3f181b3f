"""``openfuse api`` and ``openfuse admin ...``, registered through the ``openfuse.cli`` entry point.

FastAPI, uvicorn and SQLAlchemy are imported inside the commands, so ``openfuse --help`` and the
connector commands stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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


def create_key(
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace name (created if missing).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Principal name (created if missing).")],
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr", "-a", help="Principal attribute key=value (repeatable); roles=admin,editor is a list."
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


def register(app: typer.Typer) -> None:
    """Add ``api`` and ``admin`` to the ``openfuse`` command."""
    app.command("api")(serve)
    admin = typer.Typer(no_args_is_help=True, help="Administer the API: schema migrations and API keys.")
    admin.command("migrate")(migrate)
    admin.command("create-key")(create_key)
    app.add_typer(admin, name="admin")
