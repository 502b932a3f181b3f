"""A CDC pipeline from a pipeline file: its settings and its sinks.

A CDC pipeline is an ordinary :class:`~openfuse_connectors.spec.PipelineSpec` whose streams all
use ``mode: cdc``, with an optional ``cdc:`` block (:class:`CdcOptions`)::

    name: shop_cdc
    source:      {connector: postgres, config: {dsn: "postgresql://..."}}
    destination: {connector: postgres, config: {dsn: "postgresql://...", schema: mirror}}
    cdc: {deletes: soft, kafka: {bootstrap_servers: [broker:9092]}, topic_prefix: shop}
    streams:
      - {name: public.orders, mode: cdc}

:func:`load_cdc_pipeline` / :func:`parse_cdc_pipeline` validate it like any pipeline and also
refuse one that is not CDC; :func:`build` gives the runner's settings and sinks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc.config import CdcSettings
from openfuse_connectors.cdc.kafka_sink import KafkaChangeSink
from openfuse_connectors.cdc.options import SETTINGS_FIELDS, CdcOptions
from openfuse_connectors.cdc.postgres_sink import PostgresChangeSink
from openfuse_connectors.cdc.sink import ChangeSink
from openfuse_connectors.config import validate_config
from openfuse_connectors.errors import ConfigError, PipelineSpecError
from openfuse_connectors.spec import PipelineSpec, load_pipeline, parse_pipeline

__all__ = ["CdcOptions", "build", "load_cdc_pipeline", "parse_cdc_pipeline", "require_cdc"]


def require_cdc(spec: PipelineSpec, *, source: str = "<pipeline>") -> tuple[PipelineSpec, CdcOptions]:
    """``(spec, its cdc options)``; refuses a pipeline whose streams are not ``mode: cdc``."""
    if not spec.is_cdc:
        raise PipelineSpecError(
            f"pipeline {spec.name!r} is not a cdc pipeline: give its streams `mode: cdc` "
            "(or run it with `openfuse run`)",
            field="streams",
            source=source,
        )
    return spec, spec.cdc_options


def parse_cdc_pipeline(data: Any, *, source: str = "<pipeline>") -> tuple[PipelineSpec, CdcOptions]:
    """Validate a CDC pipeline mapping: ``(spec, spec.cdc_options)``."""
    return require_cdc(parse_pipeline(data, source=source), source=source)


def load_cdc_pipeline(path: str | Path) -> tuple[PipelineSpec, CdcOptions]:
    """Read and validate a CDC pipeline file: ``(spec, spec.cdc_options)``."""
    return require_cdc(load_pipeline(path), source=str(path))


def build(spec: PipelineSpec, options: CdcOptions | None = None) -> tuple[CdcSettings, list[ChangeSink]]:
    """The runner's settings and sinks for a pipeline: its destination, plus Kafka when asked.

    ``options`` default to the pipeline's own ``cdc:`` block.
    """
    options = options or spec.cdc_options
    settings = CdcSettings.from_pipeline(spec, **{k: getattr(options, k) for k in SETTINGS_FIELDS})
    prefix = options.topic_prefix or spec.name
    sinks: list[ChangeSink] = []
    dest = spec.destination
    if dest.connector == "postgres":
        cfg = validate_config(PostgresConfig, dest.config, connector="postgres", role="destination")
        assert isinstance(cfg, PostgresConfig)
        tables = {s.name: s.table for s in spec.streams}
        sinks.append(PostgresChangeSink(cfg, pipeline=spec.name, deletes=options.deletes, tables=tables))
    elif dest.connector == "kafka":
        kcfg = validate_config(KafkaConfig, dest.config, connector="kafka", role="destination")
        assert isinstance(kcfg, KafkaConfig)
        sinks.append(
            KafkaChangeSink(kcfg, pipeline=spec.name, topic_prefix=prefix, tombstones=options.tombstones)
        )
    else:
        raise ConfigError(
            f"cdc cannot apply changes to a {dest.connector!r} destination yet (PostgreSQL and Kafka can)",
            field="destination.connector",
            value=dest.connector,
        )
    if options.kafka is not None:
        if dest.connector == "kafka":
            raise ConfigError(
                "cdc.kafka is for a second, Kafka sink beside an SQL destination", field="cdc.kafka"
            )
        kcfg = validate_config(KafkaConfig, options.kafka, connector="kafka", role="cdc.kafka")
        assert isinstance(kcfg, KafkaConfig)
        sinks.append(
            KafkaChangeSink(kcfg, pipeline=spec.name, topic_prefix=prefix, tombstones=options.tombstones)
        )
    return settings, sinks
