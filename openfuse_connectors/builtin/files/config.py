"""Settings of the files connector (shared by the source and the destination)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from openfuse_connectors.config import ConnectorConfig

__all__ = ["FORMATS", "FileFormat", "FilesConfig"]

FileFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[FileFormat, ...] = ("csv", "jsonl", "parquet")


class FilesConfig(ConnectorConfig):
    """A directory of CSV, JSON Lines or Parquet files, local or behind an fsspec URL."""

    path: str = Field(
        description="Directory holding the files: a local path or an fsspec URL "
        "(`file:///data/in`, `memory://bucket/in`, `s3://bucket/prefix` when s3fs is installed)."
    )
    format: FileFormat | None = Field(
        default=None,
        description="File format. Source: inferred per file from its extension when unset "
        "(.csv/.tsv, .jsonl/.ndjson, .parquet/.pq, optionally compressed, e.g. .csv.gz). "
        "Destination: parquet when unset.",
    )
    delimiter: str = Field(default=",", description="CSV field delimiter (one character).")
    header: bool = Field(
        default=True, description="CSV files start with a header row. Without one, columns are f0, f1, ..."
    )
    encoding: str = Field(default="utf8", description="Text encoding of CSV files.")
    file_column: str | None = Field(
        default=None,
        description="Source: add a string column of this name holding the path of the file each row "
        "came from. Recommended for incremental streams without a primary key.",
    )
    max_rows_per_file: int = Field(
        default=1_000_000, ge=1, description="Destination: start a new part file after this many rows."
    )

    @field_validator("path")
    @classmethod
    def _path_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("path must not be empty")
        return v

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError(f"delimiter must be exactly one character, got {v!r}")
        return v

    @field_validator("file_column")
    @classmethod
    def _column_name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("file_column must not be empty")
        return v
