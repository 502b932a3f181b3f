"""Settings of the Kafka connector (shared by the source and the destination).

A pipeline file looks like::

    source:
      connector: kafka
      config:
        bootstrap_servers: [broker-1:9092, broker-2:9092]
        group_id: openfuse-orders
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        sasl_username: ${KAFKA_USER}
        sasl_password: ${KAFKA_PASSWORD}
        format: json_schema
        schemas:
          orders: {type: object, properties: {id: {type: integer}}, required: [id]}
        extra: {fetch.max.bytes: 52428800}

Settings the connector's guarantees depend on are set by the connector and cannot be
overridden through ``extra`` (see :data:`REFUSED_EXTRA` and :data:`PINNED_EXTRA`).

The security settings are top-level fields, not a nested block, on purpose: the SDK's config
errors hide the value of a top-level ``SecretStr`` field only, and the cross-field checks are
field validators (no model validator), so no error ever carries the credentials.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from openfuse_connectors.builtin.kafka.json_schema import check_schema
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.errors import ConfigError

__all__ = ["PINNED_EXTRA", "REFUSED_EXTRA", "KafkaConfig", "valid_topic"]

PayloadFormat = Literal["json", "json_schema"]

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

#: librdkafka settings ``extra`` may not set, with the reason. Keys owned by a dedicated field
#: are refused so that there is one place to set them (and secrets stay ``SecretStr``).
REFUSED_EXTRA: dict[str, str] = {
    "bootstrap.servers": "set bootstrap_servers",
    "metadata.broker.list": "set bootstrap_servers",
    "group.id": "set group_id",
    "security.protocol": "set security_protocol",
    "sasl.mechanism": "set sasl_mechanism",
    "sasl.mechanisms": "set sasl_mechanism",
    "sasl.username": "set sasl_username (a secret)",
    "sasl.password": "set sasl_password (a secret)",
    "ssl.key.password": "not supported through extra: it is a secret",
    "ssl.ca.location": "set ssl_ca_location",
    "auto.offset.reset": "set start_offsets",
    "enable.auto.offset.store": "offsets are tracked by OpenFuse, not stored by the client",
    "transactional.id": "the destination does not run Kafka transactions (see the loader docs)",
    "group.instance.id": "the source assigns partitions itself and never joins the group",
}

#: librdkafka settings whose value must be the one OpenFuse relies on.
PINNED_EXTRA: dict[str, tuple[set[str], str]] = {
    "enable.auto.commit": (
        {"false"},
        "offsets are committed with the destination transaction; auto commit would acknowledge "
        "messages that were never loaded",
    ),
    "enable.idempotence": ({"true"}, "the destination needs the idempotent producer"),
    "acks": ({"all", "-1"}, "the destination needs acks=all so a delivered message is replicated"),
    "request.required.acks": ({"all", "-1"}, "the destination needs acks=all"),
    "isolation.level": (
        {"read_committed"},
        "read_uncommitted would load messages of aborted transactions",
    ),
}


def valid_topic(name: str) -> bool:
    return bool(_TOPIC.match(name)) and name not in (".", "..")


class KafkaConfig(ConnectorConfig):
    """A Kafka cluster; the source reads topics as streams, the destination writes one topic per table."""

    bootstrap_servers: tuple[str, ...] = Field(
        description="host:port of one or more brokers, as a list or a comma-separated string."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None,
        validate_default=True,
        description="SASL mechanism; required with SASL_PLAINTEXT and SASL_SSL.",
    )
    sasl_username: SecretStr | None = Field(default=None, validate_default=True)
    sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    ssl_ca_location: str | None = Field(default=None, description="CA certificate file (SSL, SASL_SSL).")
    group_id: str = Field(
        default="openfuse",
        min_length=1,
        description="Source: consumer group whose offsets are read when a stream has no state yet, "
        "and committed (for lag monitoring) after each destination commit.",
    )
    format: PayloadFormat = Field(
        default="json",
        description="json: each message value is one JSON object. json_schema: each value is "
        "validated against the stream's JSON Schema in `schemas`, or else is a Kafka Connect "
        'envelope {"schema": ..., "payload": ...} (JsonConverter with schemas.enable=true). '
        "The destination writes envelopes with json_schema.",
    )
    schemas: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Source, json_schema format: JSON Schema per topic for plain JSON values.",
    )
    start_offsets: Literal["group", "earliest", "latest"] = Field(
        default="group",
        description="Where an incremental stream without stored state starts: the group's committed "
        "offsets (else earliest), earliest, or latest. Full-refresh modes always read from earliest.",
    )
    sample_size: int = Field(
        default=500, ge=1, le=100_000, description="Source: messages sampled to infer a topic's schema."
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Seconds to wait for the cluster to answer."
    )
    idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Source: end a read early (it resumes next run) when no message arrives for this long.",
    )
    max_batch_bytes: int = Field(
        default=32 << 20,
        ge=1 << 10,
        description="Source: bytes of message values per yielded batch, at most.",
    )
    topic_prefix: str = Field(default="", description="Destination: topic = topic_prefix + table.")
    state_topic: str = Field(
        default="_openfuse_state", description="Destination: compacted topic holding stream state."
    )
    quarantine_topic: str = Field(
        default="_openfuse_quarantine", description="Destination: topic receiving quarantined rows."
    )
    flush_timeout_s: float = Field(
        default=60.0, gt=0, description="Destination: seconds a commit waits for every delivery report."
    )
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="More librdkafka settings (e.g. fetch.max.bytes, compression.type). Settings "
        "that would break the connector's guarantees are refused.",
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",")]
        return v

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        servers = tuple(s.strip() for s in v if s.strip())
        if not servers:
            raise ValueError("bootstrap_servers must name at least one broker (host:port)")
        for s in servers:
            host, sep, port = s.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bootstrap server {s!r} is not host:port")
        return servers

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password")
    @classmethod
    def _sasl(cls, v: Any, info: ValidationInfo) -> Any:
        protocol = info.data.get("security_protocol", "PLAINTEXT")
        sasl = str(protocol).startswith("SASL_")
        if sasl and v is None:
            raise ValueError(f"security_protocol {protocol} needs {info.field_name}")
        if not sasl and v is not None:
            raise ValueError(f"{info.field_name} needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        return v

    @field_validator("state_topic", "quarantine_topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not valid_topic(v):
            raise ValueError(f"{v!r} is not a valid Kafka topic name (letters, digits, . _ -; at most 249)")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v and not valid_topic(v):
            raise ValueError(f"topic_prefix {v!r} may only hold letters, digits, '.', '_' and '-'")
        return v

    @field_validator("schemas")
    @classmethod
    def _schemas(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for topic, schema in v.items():
            problem = check_schema(schema)
            if problem:
                raise ValueError(f"schemas[{topic}]: {problem}")
        return v

    def check_extra(self, role: str) -> None:
        """Refuse ``extra`` settings that would break the connector's guarantees.

        Not a pydantic validator: its errors would carry the whole ``extra`` mapping, which may
        hold a secret; this names the key and shows the value only when it is not secret-like.
        """
        for key, value in self.extra.items():
            why = None
            if key in REFUSED_EXTRA:
                why = f"is not allowed: {REFUSED_EXTRA[key]}"
            elif key in PINNED_EXTRA and str(value).lower() not in PINNED_EXTRA[key][0]:
                why = f"={value!r} is refused: {PINNED_EXTRA[key][1]}"
            elif key.endswith("_cb") or key in ("logger", "on_delivery"):
                why = "is a callback and cannot be configured"
            if why:
                secret = any(w in key for w in ("password", "secret", "key", "token", "sasl"))
                raise ConfigError(
                    f"{role} connector 'kafka': extra[{key!r}] {why if not secret else why.split('=')[0]}",
                    field=f"{role}.config.extra.{key}",
                    value=None if secret else value,
                )

    def where(self) -> str:
        """The brokers, for messages (never a secret)."""
        return ",".join(self.bootstrap_servers)

    def client_settings(self) -> dict[str, Any]:
        """librdkafka settings common to every client: brokers, security, timeouts, logging."""
        settings: dict[str, Any] = {
            "bootstrap.servers": self.where(),
            "security.protocol": self.security_protocol,
            "socket.connection.setup.timeout.ms": int(self.connect_timeout_s * 1000),
            "client.id": "openfuse",
            # librdkafka logs through this logger instead of printing to stderr.
            "logger": logging.getLogger("openfuse_connectors.builtin.kafka.librdkafka"),
        }
        if self.sasl_mechanism:
            settings["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None and self.sasl_password is not None:
            settings["sasl.username"] = self.sasl_username.get_secret_value()
            settings["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            settings["ssl.ca.location"] = self.ssl_ca_location
        return settings

    def consumer_settings(self, group_id: str | None = None) -> dict[str, Any]:
        self.check_extra("source")
        settings = self.client_settings()
        settings.update(
            {
                "group.id": group_id or self.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                # A read stops at the end it saw at the start; a short broker-side wait keeps the
                # tail (and the switch from one topic to the next) from idling 500 ms each time.
                "fetch.wait.max.ms": 100,
            }
        )
        settings.update(self.extra)
        settings["enable.auto.commit"] = False  # re-assert: validated above, and what the design needs
        return settings

    def producer_settings(self) -> dict[str, Any]:
        self.check_extra("destination")
        settings = self.client_settings()
        settings.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                # Bounded memory: the local queue blocks produce() (we poll and retry) beyond this.
                "queue.buffering.max.kbytes": 65536,
                "message.timeout.ms": int(self.flush_timeout_s * 1000),
            }
        )
        settings.update(self.extra)
        settings["enable.idempotence"] = True
        return settings
