"""In-flight transforms over Arrow batches."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from openfuse_connectors.errors import ConfigError

__all__ = ["TransformContext", "Transformer"]


@dataclass(frozen=True)
class TransformContext:
    """Where a transform runs: given to :meth:`Transformer.setup` before the first batch."""

    pipeline: str
    stream: str
    run_id: str
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class Transformer(ABC):
    """Maps record batches to record batches. Registered like any other connector.

    ``transform_schema`` must describe exactly what ``transform`` produces, so tables can be
    created before the first row arrives.
    """

    name: ClassVar[str]
    required_feature: ClassVar[str | None] = None
    #: True when the transform changes values or rows (so a byte pass-through is impossible).
    row_level: ClassVar[bool] = True

    #: pydantic model of the options; validated in ``__init__`` (unknown options are refused).
    options_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, **options: Any):
        self.options = options
        if self.options_model is not None:
            try:
                self.opts = self.options_model.model_validate(options)
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                value = None if err["type"] == "missing" else err.get("input")
                raise ConfigError(
                    f"transform {self.name!r}: {err['msg']}",
                    field=f"transforms[{self.name}].{loc}",
                    value=value,
                ) from None

    @property
    def label(self) -> str:
        """How errors name this transform."""
        return self.name

    def setup(self, ctx: TransformContext) -> None:  # noqa: B027 - optional hook
        """Called once per stream run, before ``transform_schema``."""

    @abstractmethod
    def transform_schema(self, schema: pa.Schema) -> pa.Schema: ...

    @abstractmethod
    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...
