"""Conformance kit for connector authors (in the spirit of singer-sdk's ``get_tap_test_class``).

A connector's test file is a few lines::

    import pytest
    from openfuse_connectors.testing import DestinationConformance, SourceConformance

    class TestMyDestination(DestinationConformance):
        connector = "mydest"

        @pytest.fixture
        def destination_config(self, tmp_path):
            return {"path": str(tmp_path / "out.db")}

    class TestMySource(SourceConformance):
        connector = "mysource"

        @pytest.fixture
        def source(self, tmp_path):
            # create a stream holding SAMPLE rows; return (config, stream name)
            ...

Destination tests drive the real engine with an in-memory source, so they check the contract
that matters: every mode's semantics, the state committed with the data, and that a failing
load leaves the destination exactly as it was. Every built-in connector runs this kit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from openfuse_connectors.catalog import StreamInfo, cursor_candidates
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.connector import Connector
from openfuse_connectors.engine import run_pipeline, run_stream
from openfuse_connectors.errors import ConfigError, RetriableError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import CursorRange
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, StreamSpec, SyncMode, parse_pipeline
from openfuse_connectors.state import Cursor, StreamState

__all__ = ["SAMPLE_SCHEMA", "DestinationConformance", "MemorySource", "SourceConformance", "sample_rows"]

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("active", pa.bool_()),
    ]
)
_T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def sample_rows(ids: range | list[int], *, version: int = 0, ts_offset: int = 0) -> list[dict[str, Any]]:
    """Rows of :data:`SAMPLE_SCHEMA`; ``version`` changes the names, ``ts_offset`` the cursor."""
    return [
        {
            "id": i,
            "name": None if i % 5 == 0 else f"name {i} v{version} é😀",
            "amount": Decimal(i) * Decimal("1.25"),
            "updated_at": _T0 + dt.timedelta(seconds=i + ts_offset),
            "active": i % 2 == 0,
        }
        for i in ids
    ]


_TABLES: dict[str, list[pa.RecordBatch]] = {}


class MemoryConfig(ConnectorConfig):
    dataset: str
    fail_after_batches: int | None = None


class MemorySource(Extractor):
    """Streams held in this process (for tests): ``MemorySource.put(dataset, stream, batches)``."""

    name = "memory"
    config_model = MemoryConfig
    config: MemoryConfig

    @staticmethod
    def put(dataset: str, stream: str, rows: list[dict[str, Any]], *, batch_rows: int = 2) -> None:
        tab = pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA)
        _TABLES[f"{dataset}/{stream}"] = tab.to_batches(max_chunksize=batch_rows) or [
            pa.RecordBatch.from_pylist([], schema=SAMPLE_SCHEMA)
        ]

    def check(self) -> None:
        return None

    def discover(self) -> list[StreamInfo]:
        prefix = self.config.dataset + "/"
        return [
            StreamInfo(k[len(prefix) :], SAMPLE_SCHEMA, ("id",), cursor_candidates(SAMPLE_SCHEMA))
            for k in _TABLES
            if k.startswith(prefix)
        ]

    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        for n, batch in enumerate(_TABLES[f"{self.config.dataset}/{stream.name}"]):
            if self.config.fail_after_batches is not None and n >= self.config.fail_after_batches:
                raise RetriableError(f"memory source failing on purpose after {n} batches")
            if state and state.cursor and stream.cursor_field:
                import pyarrow.compute as pc

                col = batch.column(stream.cursor_field)
                batch = batch.filter(pc.greater_equal(col, state.cursor.to_scalar().cast(col.type)))
            yield batch


def _registry() -> Registry:
    reg = Registry.from_entry_points()
    reg.add(Connector.from_class(MemorySource), origin="openfuse_connectors.testing")
    return reg


class DestinationConformance:
    """Base class: set ``connector`` and provide a ``destination_config`` fixture."""

    connector: ClassVar[str]

    @pytest.fixture
    def destination_config(self) -> dict[str, Any]:
        raise NotImplementedError("provide a destination_config fixture")

    @pytest.fixture
    def registry(self) -> Registry:
        return _registry()

    @pytest.fixture
    def dataset(self) -> str:
        return uuid.uuid4().hex

    def pipeline(
        self, dataset: str, config: dict[str, Any], fail_after: int | None = None, **stream: Any
    ) -> PipelineSpec:
        src: dict[str, Any] = {"dataset": dataset}
        if fail_after is not None:
            src["fail_after_batches"] = fail_after
        return parse_pipeline(
            {
                "name": "conformance",
                "source": {"connector": "memory", "config": src},
                "destination": {"connector": self.connector, "config": config},
                "streams": [{"name": "items", **stream}],
            }
        )

    def table(self, reg: Registry, config: dict[str, Any]) -> list[tuple[Any, Any]]:
        loader = reg.loader(self.connector, config)
        try:
            rows = loader.read_table("items").to_pylist()
        finally:
            loader.close()
        return sorted((r["id"], r["name"]) for r in rows)

    def run(self, reg: Registry, spec: PipelineSpec) -> Any:
        [result] = run_pipeline(spec, registry=reg)
        return result

    def test_check(self, registry: Registry, destination_config: dict[str, Any]) -> None:
        registry.loader(self.connector, destination_config).check()

    def test_missing_config_is_a_config_error(self, registry: Registry) -> None:
        with pytest.raises(ConfigError) as ei:
            registry.loader(self.connector, {"no_such_key": 1})
        assert ei.value.field is not None and ei.value.field.startswith("destination.config.")

    def test_full_refresh_overwrite_replaces(
        self, registry: Registry, destination_config: dict[str, Any], dataset: str
    ) -> None:
        spec = self.pipeline(dataset, destination_config)
        MemorySource.put(dataset, "items", sample_rows(range(1, 8)))
        assert self.run(registry, spec).rows_written == 7
        MemorySource.put(dataset, "items", sample_rows(range(3, 6), version=1))
        r = self.run(registry, spec)
        assert r.ok, r.error
        assert self.table(registry, destination_config) == [
            (i["id"], i["name"]) for i in sample_rows(range(3, 6), version=1)
        ]

    def test_full_refresh_append_appends(
        self, registry: Registry, destination_config: dict[str, Any], dataset: str
    ) -> None:
        spec = self.pipeline(dataset, destination_config, mode="full_refresh_append")
        MemorySource.put(dataset, "items", sample_rows(range(1, 4)))
        self.run(registry, spec)
        self.run(registry, spec)
        assert [i for i, _ in self.table(registry, destination_config)] == [1, 1, 2, 2, 3, 3]

    def test_incremental_append_neither_loses_nor_duplicates(
        self, registry: Registry, destination_config: dict[str, Any], dataset: str
    ) -> None:
        spec = self.pipeline(
            dataset,
            destination_config,
            mode="incremental_append",
            cursor_field="updated_at",
            primary_key=["id"],
        )
        rows = sample_rows(range(1, 6))
        for r in rows:  # every row at the same cursor value: the boundary is the whole load
            r["updated_at"] = _T0
        MemorySource.put(dataset, "items", rows)
        assert self.run(registry, spec).rows_written == 5
        late = sample_rows(range(6, 8))
        for r in late:
            r["updated_at"] = _T0
        MemorySource.put(dataset, "items", rows + late + sample_rows(range(8, 10), ts_offset=100))
        r2 = self.run(registry, spec)
        assert r2.ok, r2.error
        assert r2.rows_written == 4
        assert self.run(registry, spec).rows_written == 0
        assert [i for i, _ in self.table(registry, destination_config)] == list(range(1, 10))

    def test_replace_range_swaps_exactly_one_cursor_range(
        self, registry: Registry, destination_config: dict[str, Any], dataset: str
    ) -> None:
        """With ``replaces_ranges``: a load with ``replace_range`` removes the table's rows of that
        range (also rows gone from the source), keeps every other row, and is atomic. Without it,
        the engine refuses such a load with a ConfigError naming ``full_refresh``."""
        spec = self.pipeline(
            dataset, destination_config, mode="incremental_append", cursor_field="updated_at"
        )
        stream = spec.streams[0]
        MemorySource.put(dataset, "items", sample_rows(range(1, 10)))
        assert self.run(registry, spec).rows_written == 9

        def at(seconds: int) -> Cursor:
            return Cursor.from_scalar(
                "updated_at",
                pa.scalar(_T0 + dt.timedelta(seconds=seconds), SAMPLE_SCHEMA.field("updated_at").type),
            )

        span = CursorRange("updated_at", at(3), at(6))  # ids 3, 4, 5
        # The source's rows of the range now: 3 and 5 changed, 4 deleted.
        MemorySource.put(dataset, "items", sample_rows([3, 5], version=1), batch_rows=1)
        before = self.table(registry, destination_config)

        def replace(fail_after: int | None = None) -> Any:
            src = {
                "dataset": dataset,
                **({"fail_after_batches": fail_after} if fail_after is not None else {}),
            }
            ex = registry.extractor("memory", src)
            loader = registry.loader(self.connector, destination_config)
            try:
                return run_stream(spec, stream, ex, loader, registry=registry, replace_range=span)
            finally:
                ex.close()
                loader.close()

        probe = registry.loader(self.connector, destination_config)
        capable = probe.replaces_ranges
        probe.close()
        if not capable:
            with pytest.raises(ConfigError) as ei:
                replace()
            assert ei.value.field == "full_refresh"
            assert self.table(registry, destination_config) == before
            return
        with pytest.raises(RetriableError):
            replace(fail_after=1)
        assert self.table(registry, destination_config) == before  # the delete rolled back too
        r = replace()
        assert r.ok and r.rows_written == 2 and r.disposition == "replace_range", r.error
        want = sample_rows([1, 2, 6, 7, 8, 9]) + sample_rows([3, 5], version=1)
        assert self.table(registry, destination_config) == sorted((w["id"], w["name"]) for w in want)

    def test_incremental_dedupe_newest_wins(
        self, registry: Registry, destination_config: dict[str, Any], dataset: str
    ) -> None:
        spec = self.pipeline(
            dataset,
            destination_config,
            mode="incremental_dedupe",
            cursor_field="updated_at",
            primary_key=["id"],
        )
        MemorySource.put(dataset, "items", sample_rows(range(1, 7)))
        self.run(registry, spec)
        changed = sample_rows(range(2, 4), version=2, ts_offset=1000)
        MemorySource.put(
            dataset, "items", sample_rows([1, 4, 5, 6]) + changed + sample_rows([7], ts_offset=1000)
        )
        r = self.run(registry, spec)
        assert r.ok, r.error
        expect = {i["id"]: i["name"] for i in sample_rows(range(1, 8))}
        expect.update({i["id"]: i["name"] for i in changed})
        assert self.table(registry, destination_config) == sorted(expect.items())
        loader = registry.loader(self.connector, destination_config)
        state = loader.read_state("conformance", "items")
        loader.close()
        assert state is not None and state.cursor is not None
        assert state.cursor.as_py() == _T0 + dt.timedelta(seconds=1007)

    def test_failed_load_changes_nothing(
        self, registry: Registry, destination_config: dict[str, Any], dataset: str
    ) -> None:
        for mode, extra in (
            ("full_refresh_overwrite", {}),
            ("incremental_append", {"cursor_field": "updated_at"}),
            ("incremental_dedupe", {"cursor_field": "updated_at", "primary_key": ["id"]}),
        ):
            ds = f"{dataset}-{mode}"
            ok = self.pipeline(
                ds, destination_config, mode=mode, destination_table=f"items_{mode[:12]}", **extra
            )
            MemorySource.put(ds, "items", sample_rows(range(1, 5)))
            self.run(registry, ok)
            loader = registry.loader(self.connector, destination_config)
            before = loader.read_table(f"items_{mode[:12]}").to_pylist()
            state_before = loader.read_state("conformance", ok.streams[0].state_key)
            loader.close()
            MemorySource.put(ds, "items", sample_rows(range(1, 9), version=3, ts_offset=50))
            bad = self.pipeline(
                ds,
                destination_config,
                fail_after=2,
                mode=mode,
                destination_table=f"items_{mode[:12]}",
                **extra,
            )
            r = self.run(registry, bad)
            assert not r.ok and "failing on purpose" in (r.error or "")
            loader = registry.loader(self.connector, destination_config)
            assert loader.read_table(f"items_{mode[:12]}").to_pylist() == before, mode
            assert loader.read_state("conformance", ok.streams[0].state_key) == state_before, mode
            loader.close()


class SourceConformance:
    """Base class: set ``connector`` and provide a ``source`` fixture -> (config, stream name).

    The stream must hold exactly :func:`sample_rows` ``(range(1, 11))`` (ids 1..10; ``updated_at``
    is the cursor). Types may be the source's own (e.g. decimals read back as decimals or text).
    """

    connector: ClassVar[str]

    @pytest.fixture
    def source(self) -> tuple[dict[str, Any], str]:
        raise NotImplementedError("provide a source fixture")

    def registry(self) -> Registry:
        """The registry the kit resolves ``connector`` in; override to add an unregistered connector."""
        return _registry()

    def extractor(self, config: dict[str, Any]) -> Extractor:
        return self.registry().extractor(self.connector, config)

    def test_check(self, source: tuple[dict[str, Any], str]) -> None:
        self.extractor(source[0]).check()

    def test_missing_config_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError) as ei:
            self.registry().extractor(self.connector, {"no_such_key": 1})
        assert ei.value.field is not None and ei.value.field.startswith("source.config.")

    def test_discover_lists_the_stream(self, source: tuple[dict[str, Any], str]) -> None:
        config, name = source
        streams = {s.name: s for s in self.extractor(config).discover()}
        assert name in streams
        assert {"id", "name", "updated_at"} <= set(streams[name].schema.names)

    def test_read_returns_every_row_once(self, source: tuple[dict[str, Any], str]) -> None:
        config, name = source
        ex = self.extractor(config)
        rows = [r for b in ex.read(StreamSpec(name=name), None, batch_size=3) for r in b.to_pylist()]
        assert sorted(r["id"] for r in rows) == list(range(1, 11))
        by_id = {r["id"]: r for r in rows}
        for want in sample_rows(range(1, 11)):
            assert by_id[want["id"]]["name"] == want["name"]

    def test_incremental_read_starts_at_the_cursor(self, source: tuple[dict[str, Any], str]) -> None:
        config, name = source
        ex = self.extractor(config)
        spec = StreamSpec(name=name, mode=SyncMode.INCREMENTAL_APPEND, cursor_field="updated_at")
        info = ex.stream_info(spec)
        cursor_type = info.schema.field("updated_at").type
        at = pa.scalar(_T0 + dt.timedelta(seconds=6), pa.timestamp("us", tz="UTC")).cast(cursor_type)
        state = StreamState(cursor=Cursor.from_scalar("updated_at", at))
        rows = [r for b in ex.read(spec, state) for r in b.to_pylist()]
        assert sorted(r["id"] for r in rows) == [6, 7, 8, 9, 10]

    def test_bounded_read_stops_before_the_cursor_end(self, source: tuple[dict[str, Any], str]) -> None:
        """Extractors declaring ``bounded_reads`` honour ``cursor_end`` (exclusive) alone and
        together with a stored cursor. One that takes ``cursor_end`` without declaring it would
        never be handed the bound (partitions would read to the end of the table, then filter)."""
        import inspect

        config, name = source
        ex = self.extractor(config)
        if not ex.bounded_reads:
            assert "cursor_end" not in inspect.signature(ex.read).parameters, (
                f"{type(ex).__name__}.read takes cursor_end but the class does not set bounded_reads = True"
            )
            return
        spec = StreamSpec(name=name, mode=SyncMode.INCREMENTAL_APPEND, cursor_field="updated_at")
        cursor_type = ex.stream_info(spec).schema.field("updated_at").type

        def at(seconds: int) -> Cursor:
            value = pa.scalar(_T0 + dt.timedelta(seconds=seconds), pa.timestamp("us", tz="UTC"))
            return Cursor.from_scalar("updated_at", value.cast(cursor_type))

        def ids(state: StreamState | None, end: Cursor) -> list[int]:
            read = ex.read(spec, state, batch_size=3, cursor_end=end)  # type: ignore[call-arg]
            return sorted(r["id"] for b in read for r in b.to_pylist())

        assert ids(None, at(4)) == [1, 2, 3]
        assert ids(StreamState(cursor=at(3)), at(8)) == [3, 4, 5, 6, 7]
        assert ids(StreamState(cursor=at(5)), at(5)) == []
