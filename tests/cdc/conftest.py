"""CDC fixtures: a private logical-decoding PostgreSQL cluster and librdkafka's mock Kafka cluster.

No Kafka broker runs here, so Kafka is librdkafka's mock cluster (a Kafka protocol server over
TCP, started by a producer with ``test.mock.num.brokers``); the sinks and the tests' readers are
separate clients talking to it over TCP.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def source_db(cdc_source_db: str) -> str:
    """A fresh database of the private cluster (``tests/conftest.py``); its slots are dropped after."""
    return cdc_source_db


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[str]:
    """bootstrap.servers of a three-broker mock cluster, alive for the whole session."""
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 3, "logger": logging.getLogger("tests.cdc.mock")})
    brokers = owner.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in sorted(brokers, key=lambda b: b.id))
    del owner


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"
