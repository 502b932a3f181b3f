"""A CDC pipeline from a pipeline file: its settings and its sinks.

Until :class:`~openfuse_connectors.spec.PipelineSpec` has a ``cdc`` block and a ``cdc`` sync mode,
:func:`parse_cdc_pipeline` takes the ``cdc:`` block out of the file (and ``mode: cdc`` out of the
streams) before the rest is validated as usual::

    name: shop_cdc
    source:      {connector: postgres, config: {dsn: "postgresql://..."}}
    destination: {connector: postgres, config: {dsn: "postgresql://...", schema: mirror}}
    cdc: {deletes: soft, kafka: {bootstrap_servers: [broker:9092]}, topic_prefix: shop}
    streams:
      - {name: public.orders, mode: cdc}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc.config import CdcSettings
from openfuse_connectors.cdc.kafka_sink import KafkaChangeSink
from openfuse_connectors.cdc.options import SETTINGS_FIELDS, CdcOptions
from openfuse_connectors.cdc.postgres_sink import PostgresChangeSink
from openfuse_connectors.cdc.sink import ChangeSink
from openfuse_connectors.config import validate_config
from openfuse_connectors.errors import ConfigError, PipelineSpecError
from openfuse_connectors.spec import PipelineSpec, expand_env, parse_pipeline

__all__ = ["CdcOptions", "build", "load_cdc_pipeline", "parse_cdc_pipeline"]


def parse_cdc_pipeline(data: Any, *, source: str = "<pipeline>") -> tuple[PipelineSpec, CdcOptions]:
    if not isinstance(data, dict):
        raise PipelineSpecError(f"a pipeline must be a mapping, got {type(data).__name__}", source=source)
    data = dict(data)
    block = data.pop("cdc", None) or {}
    streams = data.get("streams")
    if isinstance(streams, list):
        data["streams"] = [
            {k: v for k, v in s.items() if not (k == "mode" and v == "cdc")} if isinstance(s, dict) else s
            for s in streams
        ]
    spec = parse_pipeline(data, source=source)
    try:
        options = CdcOptions.model_validate(expand_env(block, where="cdc"))
    except ValidationError as e:
        err = e.errors()[0]
        loc = "cdc." + ".".join(str(p) for p in err["loc"])
        raise PipelineSpecError(err["msg"], field=loc, source=source) from None
    return spec, options


def load_cdc_pipeline(path: str | Path) -> tuple[PipelineSpec, CdcOptions]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise PipelineSpecError(f"cannot read pipeline file: {e.strerror}", source=str(p)) from e
    except yaml.YAMLError as e:
        raise PipelineSpecError(f"invalid YAML: {e}", source=str(p)) from None
    return parse_cdc_pipeline(data, source=str(p))


def build(spec: PipelineSpec, options: CdcOptions | None = None) -> tuple[CdcSettings, list[ChangeSink]]:
    """The runner's settings and sinks for a pipeline: its destination, plus Kafka when asked."""
    options = options or CdcOptions()
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
