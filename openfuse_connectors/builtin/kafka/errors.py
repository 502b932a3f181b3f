"""Errors of the Kafka connector."""

from __future__ import annotations

from openfuse_connectors.errors import RetriableError

__all__ = ["KafkaCommitError", "KafkaDeliveryError", "KafkaReadError"]


class KafkaReadError(RetriableError):
    """The cluster reported an error while a partition was read; the run can be retried."""

    def __init__(self, *, topic: str, partition: int | None, reason: str):
        self.topic = topic
        self.partition = partition
        self.reason = reason
        super().__init__(f"kafka: reading {topic=} {partition=} failed: {reason}")


class KafkaDeliveryError(RetriableError):
    """Messages were not acknowledged by the brokers; the load is not committed."""

    def __init__(self, *, topic: str, failed: int, reason: str):
        self.topic = topic
        self.failed = failed
        self.reason = reason
        super().__init__(
            f"kafka: {failed} message(s) to {topic=} were not delivered: {reason}. The stream state was "
            "not advanced; run the stream again (messages that did arrive are sent again, with the same key)"
        )


class KafkaCommitError(RetriableError):
    """Committing consumer-group offsets (for monitoring) failed; the loaded data is unaffected."""

    def __init__(self, *, group: str, topic: str, reason: str):
        self.group = group
        self.topic = topic
        self.reason = reason
        super().__init__(f"kafka: committing offsets of {group=} on {topic=} failed: {reason}")
