"""Run a user's function on every batch (for power users)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from openfuse_connectors.errors import ConfigError, PluginError
from openfuse_connectors.transformer import Transformer


class _PythonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    callable: str = Field(description="`package.module:function` or `package.module.function`.")


class PythonTransform(Transformer):
    """``callable(batch) -> batch``. Its output schema is found by calling it on an empty batch.

    The function runs inside the plugin error boundary: its exceptions surface as a PluginError
    naming the callable.
    """

    name = "python"
    options_model = _PythonOptions
    opts: _PythonOptions

    def __init__(self, **options: object):
        super().__init__(**options)
        self.fn = _load(self.opts.callable)

    @property
    def label(self) -> str:
        return f"python:{self.opts.callable}"  # errors name the user's function

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        out = self._call(pa.RecordBatch.from_pylist([], schema=schema))
        return out.schema

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return self._call(batch)

    def _call(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        out = self.fn(batch)
        if isinstance(out, pa.Table):
            out = (
                out.combine_chunks().to_batches()[0]
                if out.num_rows
                else pa.RecordBatch.from_pylist([], schema=out.schema)
            )
        if not isinstance(out, pa.RecordBatch):
            raise PluginError(
                self.name,
                "transform",
                TypeError(f"returned {type(out).__name__}, expected a pyarrow.RecordBatch"),
            )
        return out


def _load(path: str) -> Callable[[pa.RecordBatch], object]:
    mod_name, sep, attr = path.partition(":")
    if not sep:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ConfigError(
            "callable must be `package.module:function`", field="transforms[python].callable", value=path
        )
    try:
        mod = importlib.import_module(mod_name)
        fn = getattr(mod, attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"cannot load callable: {e}", field="transforms[python].callable", value=path
        ) from e
    if not callable(fn):
        raise ConfigError("not callable", field="transforms[python].callable", value=path)
    return fn  # type: ignore[no-any-return,unused-ignore]
