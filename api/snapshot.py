"""The committed API contracts: ``api/openapi.snapshot.json`` (REST) and
``api/schema.snapshot.graphql`` (GraphQL SDL).

``python -m api.snapshot`` rewrites both from the live app; ``python -m api.snapshot --check``
exits 1 when either differs (the test suite does the same). Review the diffs like code: they
are the contracts the dashboard's generated clients are built from.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["GRAPHQL_SNAPSHOT", "SNAPSHOT", "live_document", "live_sdl", "render"]

SNAPSHOT = Path(__file__).resolve().parent / "openapi.snapshot.json"
GRAPHQL_SNAPSHOT = Path(__file__).resolve().parent / "schema.snapshot.graphql"


def live_document() -> dict[str, Any]:
    from api.app import create_app
    from api.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        # A throwaway SQLite URL: building the app connects to nothing.
        app = create_app(Settings(home=Path(home), database_url=f"sqlite:///{home}/unused.db"))
        return app.openapi()


def live_sdl() -> str:
    from api.graphql import build_schema

    return build_schema().as_str().rstrip("\n") + "\n"


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    texts = {SNAPSHOT: render(live_document()), GRAPHQL_SNAPSHOT: live_sdl()}
    if "--check" in argv:
        stale = [p for p, text in texts.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"{p} is out of date; run `python -m api.snapshot` and commit it", file=sys.stderr)
        return 1 if stale else 0
    for p, text in texts.items():
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
