"""The GraphQL schema is a reviewed contract: the live SDL must equal the committed snapshot."""

from __future__ import annotations

from api.snapshot import GRAPHQL_SNAPSHOT, live_sdl


def test_graphql_sdl_matches_the_committed_snapshot() -> None:
    assert GRAPHQL_SNAPSHOT.exists(), (
        f"{GRAPHQL_SNAPSHOT} is missing; run `python -m api.snapshot` and commit it"
    )
    assert live_sdl() == GRAPHQL_SNAPSHOT.read_text(encoding="utf-8"), (
        f"the GraphQL schema changed; if that is intended, run `python -m api.snapshot` and commit "
        f"{GRAPHQL_SNAPSHOT.name}"
    )


def test_the_sdl_has_the_polling_field_for_run_progress() -> None:
    sdl = live_sdl()
    assert "run(id: UUID!): Run" in sdl
    assert "steps: [StepResult!]!" in sdl and "rowsWritten: Long" in sdl
