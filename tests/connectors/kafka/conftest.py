"""Kafka fixtures: librdkafka's built-in mock cluster (three brokers, in this process).

No Kafka broker runs here, so the cluster is librdkafka's mock (a real Kafka protocol server
over TCP, started by a producer created with ``test.mock.num.brokers``). Every client of the
connector and of the tests is a separate producer or consumer that talks to it over TCP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from openfuse_connectors.builtin.kafka import CONNECTOR
from openfuse_connectors.connector import Connector
from openfuse_connectors.registry import Registry
from openfuse_connectors.testing import MemorySource

Produce = Callable[..., None]


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[str]:
    """bootstrap.servers of a three-broker mock cluster, alive for the whole session."""
    import logging

    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 3, "logger": logging.getLogger("tests.kafka.mock")})
    brokers = owner.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in sorted(brokers, key=lambda b: b.id))
    del owner


@pytest.fixture
def registry() -> Registry:
    # Until pyproject.toml declares `kafka = "openfuse_connectors.builtin.kafka:CONNECTOR"`.
    reg = Registry.from_entry_points()
    reg.add(CONNECTOR, origin="tests")
    reg.add(Connector.from_class(MemorySource), origin="openfuse_connectors.testing")
    return reg


@pytest.fixture
def topic() -> str:
    return f"orders_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def produce(kafka_cluster: str) -> Iterator[Produce]:
    """produce(topic, values, keys=None): send values (dicts as JSON, bytes as they are) and wait
    for every delivery report, with a producer of the tests' own."""
    import logging

    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka_cluster, "logger": logging.getLogger("tests.kafka.producer")})

    def send(topic: str, values: list[Any], keys: list[str | None] | None = None) -> None:
        errors: list[Any] = []
        for i, v in enumerate(values):
            raw = v if isinstance(v, bytes) or v is None else json.dumps(v).encode()
            key = keys[i] if keys else str(i)
            p.produce(topic, raw, key=key, on_delivery=lambda e, m: errors.append(e) if e else None)
        assert p.flush(10) == 0 and not errors, errors

    yield send
    p.flush(5)
