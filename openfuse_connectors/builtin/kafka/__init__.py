"""Kafka source and destination (JSON or Kafka Connect envelope messages)."""

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.kafka.extractor import KafkaExtractor
from openfuse_connectors.builtin.kafka.loader import KafkaLoader
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="kafka",
    config_model=KafkaConfig,
    extractor=KafkaExtractor,
    loader=KafkaLoader,
    description="Kafka topics of JSON messages: offsets committed with the data (source), "
    "keyed messages with state in a compacted topic (destination).",
)

__all__ = ["CONNECTOR", "KafkaConfig", "KafkaExtractor", "KafkaLoader"]
