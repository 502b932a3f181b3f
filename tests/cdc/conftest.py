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
from cdc_support import Cluster, pg, start_cluster, stop_cluster


@pytest.fixture(scope="session")
def cdc_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
def source_db(cdc_cluster: Cluster) -> Iterator[str]:
    """A fresh database of the private cluster (wal_level=logical); its slots are dropped after."""
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    pg(cdc_cluster.url(), f'CREATE DATABASE "{name}"')
    try:
        yield cdc_cluster.url(name)
    finally:
        admin = cdc_cluster.url()
        pg(
            admin,
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            f"WHERE database = '{name}' AND active_pid IS NOT NULL",
        )
        import time

        for _ in range(50):
            try:
                pg(
                    admin,
                    f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'",
                )
                break
            except Exception:  # the terminated walsender may still hold its slot for a moment
                time.sleep(0.1)
        pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
