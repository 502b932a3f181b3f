"""Every source type into every destination: exact, widened, quarantined or refused, never silently altered.

One test per (source, destination) pair. The source's edge table (``types_cases``) is loaded
twice through the real engine (a full-refresh overwrite, then an append into the table it made),
read back with ``Loader.read_table`` and judged value by value (``types_harness``). The test fails
when a value is silently altered or lost, and when what happened to a column differs from the
matrix in ``docs/types.md`` (regenerate it with ``tests/types/render_matrix.py --write``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from types_cases import DESTINATIONS, SOURCES
from types_harness import (
    Source,
    build_source,
    dest_config,
    mysql_create_db,
    mysql_drop_db,
    pg_create_db,
    pg_drop_db,
    run_pair,
)
from types_matrix import DOC, cell, documented_cells

from openfuse_connectors.registry import Registry, get_registry

PAIRS = [(s, d) for s in SOURCES for d in DESTINATIONS]


class Servers:
    """The sources, built on first use and shared by the module's tests; one PostgreSQL database
    for every pair's destination (a schema per source)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.tag = uuid.uuid4().hex[:8]
        self.sources: dict[str, Source] = {}
        self.pg: dict[str, str] = {}
        self.mysql_db: str | None = None

    def pg_db(self, role: str) -> str:
        if role not in self.pg:
            self.pg[role] = pg_create_db(f"of_types_{role}_{self.tag}")
        return self.pg[role]

    def source(self, name: str) -> Source:
        if name not in self.sources:
            mysql_db = None
            if name == "mysql":
                self.mysql_db = mysql_db = f"of_types_{self.tag}"
                mysql_create_db(mysql_db)
            pg = self.pg_db("src") if name == "postgres" else None
            self.sources[name] = build_source(name, self.workdir, pg_url_=pg, mysql_db=mysql_db)
        return self.sources[name]

    def close(self) -> None:
        for role in self.pg:
            pg_drop_db(f"of_types_{role}_{self.tag}")
        if self.mysql_db:
            mysql_drop_db(self.mysql_db)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("types_sources"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return get_registry()


@pytest.fixture(scope="module")
def documented() -> dict[tuple[str, str, str], str]:
    return documented_cells(DOC.read_text(encoding="utf-8"))


# Pairs known to alter or lose values today, with the cause (issue #3 stays open until this is
# empty). strict=True: a pair that starts passing fails here, so the entry must be removed.
KNOWN_LOSSY: dict[tuple[str, str], str] = {}


def _marks(source: str, dest: str) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.postgres] if "postgres" in (source, dest) else []
    if (source, dest) in KNOWN_LOSSY:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_LOSSY[(source, dest)]))
    return marks


@pytest.mark.parametrize(
    ("source", "dest"),
    [pytest.param(s, d, id=f"{s}->{d}", marks=_marks(s, d)) for s, d in PAIRS],
)
def test_round_trip(
    source: str,
    dest: str,
    servers: Servers,
    registry: Registry,
    documented: dict[tuple[str, str, str], str],
    tmp_path: Path,
) -> None:
    pg_dest = servers.pg_db("dest") if dest == "postgres" else None
    outcome = run_pair(registry, servers.source(source), dest, dest_config(dest, tmp_path, pg_dest, source))

    problems = outcome.all_problems()
    stale = [
        f"{column}: docs/types.md says {documented.get((source, column, dest))!r}, the load gives {cell(o)!r}"
        for column, o in outcome.columns.items()
        if documented.get((source, column, dest)) != cell(o)
    ]
    assert not problems, (
        f"{source}->{dest}: {len(problems)} value(s) silently altered or lost:\n  " + "\n  ".join(problems)
    )
    assert not stale, (
        f"{source}->{dest} no longer matches docs/types.md; regenerate it with "
        "`.venv/bin/python tests/types/render_matrix.py --write` and review the diff:\n  "
        + "\n  ".join(stale)
    )
