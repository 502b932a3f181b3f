"""In-flight transforms over Arrow batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import pyarrow as pa

__all__ = ["Transformer"]


class Transformer(ABC):
    """Maps record batches to record batches. Registered like any other connector.

    ``transform_schema`` must describe exactly what ``transform`` produces, so tables can be
    created before the first row arrives.
    """

    name: ClassVar[str]
    required_feature: ClassVar[str | None] = None
    #: True when the transform changes values or rows (so a byte pass-through is impossible).
    row_level: ClassVar[bool] = True

    def __init__(self, **options: Any):
        self.options = options

    @abstractmethod
    def transform_schema(self, schema: pa.Schema) -> pa.Schema: ...

    @abstractmethod
    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...
