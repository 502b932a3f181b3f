"""Filesystem access through fsspec: file names, listing, modification times, atomic writes."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import IO, Any

from openfuse_connectors.builtin.files.config import FileFormat

__all__ = ["FORMAT_BY_EXTENSION", "FileRef", "Storage", "is_hidden", "split_name"]

FORMAT_BY_EXTENSION: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSION_EXTENSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".lzma": "lzma", ".zip": "zip"}


def split_name(basename: str) -> tuple[str, FileFormat | None, str | None]:
    """``orders.csv.gz`` -> (``orders``, ``csv``, ``gzip``); an unknown extension gives no format."""
    name = basename
    compression = None
    root, ext = posixpath.splitext(name)
    if ext.lower() in _COMPRESSION_EXTENSIONS:
        compression = _COMPRESSION_EXTENSIONS[ext.lower()]
        name = root
        root, ext = posixpath.splitext(name)
    fmt = FORMAT_BY_EXTENSION.get(ext.lower())
    if fmt is None:
        return (name if compression else basename), None, compression
    return root, fmt, compression


def is_hidden(basename: str) -> bool:
    """Names starting with ``_`` or ``.`` are bookkeeping (staging, state, ``_SUCCESS``), never data."""
    return basename.startswith(("_", "."))


@dataclass(frozen=True)
class FileRef:
    """One data file.

    Attributes:
        path: the path inside the filesystem (fsspec's protocol-less form).
        url: how the file is shown to people: a local path, or the full URL for remote stores.
        mtime_us: modification time in microseconds since the epoch (UTC).
        format: the format it is read in.
        compression: fsspec compression name, or None.
        size: size in bytes when the filesystem reports it.
    """

    path: str
    url: str
    mtime_us: int
    format: FileFormat
    compression: str | None
    size: int | None = None


class Storage:
    """An fsspec filesystem rooted at the configured ``path``."""

    def __init__(self, url: str):
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        self.url = url
        self.fs, root = url_to_fs(url)
        self.root = root.rstrip("/") or "/"
        self.local = isinstance(self.fs, LocalFileSystem)
        self._show_url = not self.local or "://" in url

    # -- paths
    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def relative(self, path: str) -> str:
        return posixpath.relpath(path, self.root)

    def display(self, path: str) -> str:
        return str(self.fs.unstrip_protocol(path)) if self._show_url else path

    # -- queries
    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def isdir(self, path: str) -> bool:
        return bool(self.fs.isdir(path))

    def isfile(self, path: str) -> bool:
        return bool(self.fs.isfile(path))

    def entries(self, path: str) -> list[dict[str, Any]]:
        """Direct children of a directory, sorted by name ([] when it does not exist)."""
        if not self.fs.exists(path):
            return []
        return sorted(self.fs.ls(path, detail=True), key=lambda e: str(e["name"]))

    def glob(self, pattern: str) -> list[dict[str, Any]]:
        found = self.fs.glob(pattern, detail=True)
        return sorted(found.values(), key=lambda e: str(e["name"]))

    def mtime_us(self, path: str, info: dict[str, Any] | None = None) -> int:
        """Modification time in microseconds (UTC); exact for local files."""
        if self.local:
            return os.stat(path).st_mtime_ns // 1000
        info = info if info is not None else self.fs.info(path)
        for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
            if key in info and info[key] is not None:
                return _to_us(info[key])
        return _to_us(self.fs.modified(path))

    # -- I/O
    def open(self, path: str, mode: str = "rb", compression: str | None = None) -> IO[Any]:
        return self.fs.open(path, mode, compression=compression)

    def makedirs(self, path: str) -> None:
        self.fs.makedirs(path, exist_ok=True)

    def read_bytes(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(path))

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write a whole file so readers see the old content or the new one, never a part."""
        self.makedirs(posixpath.dirname(path))
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        if self.local:
            os.replace(tmp, path)
        else:
            self.fs.mv(tmp, path)

    def move(self, src: str, dst: str) -> None:
        """Rename one file (a single rename on local disks)."""
        self.makedirs(posixpath.dirname(dst))
        if self.local:
            os.replace(src, dst)
        else:
            self.fs.mv(src, dst)

    def remove(self, path: str) -> None:
        """Remove a file or a directory tree; nothing happens when it is already gone."""
        if self.fs.exists(path):
            self.fs.rm(path, recursive=self.fs.isdir(path))


def _to_us(value: Any) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, int | float):
        return round(value * 1_000_000)
    if isinstance(value, str):
        return _to_us(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(f"unsupported modification time {value!r}")
