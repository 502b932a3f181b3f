"""Run every round trip of the type matrix and print docs/types.md (``--write`` writes it).

    .venv/bin/python tests/types/render_matrix.py            # print the markdown
    .venv/bin/python tests/types/render_matrix.py --write    # update docs/types.md

Needs the same servers as the tests (PostgreSQL, MariaDB; OPENFUSE_TEST_PG / OPENFUSE_TEST_MYSQL).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

from types_cases import DESTINATIONS, SOURCES  # noqa: E402
from types_harness import (  # noqa: E402
    PairOutcome,
    build_source,
    dest_config,
    mysql_create_db,
    mysql_drop_db,
    pg_create_db,
    pg_drop_db,
    run_pair,
)
from types_matrix import DOC, render  # noqa: E402

from openfuse_connectors.registry import get_registry  # noqa: E402


def run_all(sources: list[str], dests: list[str]) -> dict[tuple[str, str], PairOutcome]:
    tag = uuid.uuid4().hex[:8]
    reg = get_registry()
    out: dict[tuple[str, str], PairOutcome] = {}
    made: list[str] = []
    mysql_db = f"of_types_{tag}" if "mysql" in sources else None
    with tempfile.TemporaryDirectory(prefix="openfuse-types-") as tmp:
        work = Path(tmp)
        try:
            pg_src = pg_dst = None
            if "postgres" in sources:
                pg_src = pg_create_db(f"of_types_src_{tag}")
                made.append(f"of_types_src_{tag}")
            if "postgres" in dests:
                pg_dst = pg_create_db(f"of_types_dest_{tag}")
                made.append(f"of_types_dest_{tag}")
            if mysql_db:
                mysql_create_db(mysql_db)
            for s in sources:
                src = build_source(s, work, pg_url_=pg_src, mysql_db=mysql_db)
                for d in dests:
                    t0 = time.perf_counter()
                    out[(s, d)] = run_pair(reg, src, d, dest_config(d, work / f"{s}_{d}", pg_dst, s))
                    print(f"{s} -> {d}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        finally:
            for db in made:
                pg_drop_db(db)
            if mysql_db:
                mysql_drop_db(mysql_db)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {DOC} instead of printing")
    args = ap.parse_args()
    text = render(run_all(list(SOURCES), list(DESTINATIONS)))
    if args.write:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
