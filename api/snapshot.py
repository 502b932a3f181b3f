"""The committed OpenAPI document, ``api/openapi.snapshot.json``.

``python -m api.snapshot`` rewrites it from the live app; ``python -m api.snapshot --check``
exits 1 when it differs (the test suite does the same). Review the diff like code: it is the
contract the dashboard's generated client is built from.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["SNAPSHOT", "live_document", "render"]

SNAPSHOT = Path(__file__).resolve().parent / "openapi.snapshot.json"


def live_document() -> dict[str, Any]:
    from api.app import create_app
    from api.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        # A throwaway SQLite URL: building the app connects to nothing.
        app = create_app(Settings(home=Path(home), database_url=f"sqlite:///{home}/unused.db"))
        return app.openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(live_document())
    if "--check" in argv:
        if not SNAPSHOT.exists() or SNAPSHOT.read_text(encoding="utf-8") != text:
            print(f"{SNAPSHOT} is out of date; run `python -m api.snapshot` and commit it", file=sys.stderr)
            return 1
        return 0
    SNAPSHOT.write_text(text, encoding="utf-8")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
