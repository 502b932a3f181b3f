"""PII transforms: salted hashing and masking."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from openfuse_connectors.builtin.transforms.columns import require
from openfuse_connectors.transformer import Transformer


class _HashOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: list[str] = Field(min_length=1)
    salt: SecretStr = Field(description="Secret salt; use ${ENV_VAR} in the pipeline file, never a literal.")


class Hash(Transformer):
    """Salted SHA-256 of each value (hex). Equal values hash equal, so joins still work; NULL stays NULL."""

    name = "hash"
    options_model = _HashOptions
    opts: _HashOptions

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, self.opts.columns)
        return pa.schema(
            [pa.field(f.name, pa.string(), f.nullable) if f.name in self.opts.columns else f for f in schema]
        )

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        salt = self.opts.salt.get_secret_value().encode()
        cols = []
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            if name in self.opts.columns:
                text = (
                    col
                    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
                    else pc.cast(col, pa.string())
                )
                base = hashlib.sha256(salt)
                out: list[str | None] = []
                for v in text.to_pylist():
                    if v is None:
                        out.append(None)
                    else:
                        h = base.copy()
                        h.update(v.encode())
                        out.append(h.hexdigest())
                col = pa.array(out, pa.string())
            cols.append(col)
        return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


class _MaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: list[str] = Field(min_length=1)
    keep_last: int = Field(default=0, ge=0, description="Characters left visible at the end.")
    char: str = Field(default="*", min_length=1, max_length=1)


class Mask(Transformer):
    """Replace characters with ``char``, keeping the last ``keep_last``: ``************1234``."""

    name = "mask"
    options_model = _MaskOptions
    opts: _MaskOptions

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, self.opts.columns)
        return pa.schema(
            [pa.field(f.name, pa.string(), f.nullable) if f.name in self.opts.columns else f for f in schema]
        )

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        k = self.opts.keep_last
        cols = []
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            if name in self.opts.columns:
                text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
                hidden = pc.max_element_wise(pc.subtract(pc.utf8_length(text), k), 0)
                stars = pc.binary_repeat(self.opts.char, hidden)
                tail = pc.utf8_slice_codeunits(text, start=-k) if k else pc.binary_repeat("", hidden)
                col = pc.binary_join_element_wise(stars, tail, "")
            cols.append(col)
        return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
