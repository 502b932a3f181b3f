"""Obligations as a transform: resolved against the actual columns, strongest action wins, fail
closed when hashing has no salt."""

from __future__ import annotations

import pyarrow as pa
import pytest

from openfuse_connectors.errors import ConfigError
from openfuse_connectors.transformer import TransformContext
from openfuse_policy.dataplane import ObligationTransform
from openfuse_policy.obligation import Obligation

BATCH = pa.record_batch(
    {"id": [1, 2], "email": ["a@x.io", "b@x.io"], "ssn": ["123", "456"], "card": ["4111", "4242"]}
)
TAGS = {"email": ("pii",), "ssn": ("pii", "secret"), "card": ("pci",)}


def obligations(*texts: str) -> list[Obligation]:
    return [Obligation.parse(t) for t in texts]


def test_strongest_action_per_column_and_by_name_or_tag() -> None:
    t = ObligationTransform(
        obligations("mask:pii", "hash:email", "drop:tag:secret", "mask:column:card", "drop:column:nope"),
        TAGS,
        salt="s",
    )
    t.setup(TransformContext("p", "s", "r"))
    schema = t.transform_schema(BATCH.schema)
    assert schema.names == ["id", "email", "card"]  # ssn dropped (drop beats mask)
    out = t.transform(BATCH)
    assert out.column("email").to_pylist()[0] != "a@x.io" and len(out.column("email")[0].as_py()) == 64
    assert out.column("card").to_pylist() == ["****", "****"]
    assert t.applied == {"card": "mask", "email": "hash", "ssn": "drop"}


def test_hashing_without_a_salt_fails_closed_before_any_row() -> None:
    t = ObligationTransform(obligations("hash:pii"), TAGS, salt=None)
    with pytest.raises(ConfigError, match="OPENFUSE_MASKING_SALT"):
        t.transform_schema(BATCH.schema)


def test_a_schema_change_mid_stream_is_resolved_again() -> None:
    t = ObligationTransform(obligations("drop:pii"), TAGS)
    t.transform_schema(pa.schema([("id", pa.int64())]))
    assert t.transform(BATCH).schema.names == ["id", "card"]
