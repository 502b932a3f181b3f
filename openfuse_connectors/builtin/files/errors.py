"""Errors of the files connector."""

from __future__ import annotations

from openfuse_connectors.errors import FatalError

__all__ = ["FileReadError"]


class FileReadError(FatalError):
    """A whole file cannot be read (not one bad row: those are quarantined)."""

    def __init__(self, file: str, reason: str, hint: str = ""):
        self.file = file
        self.reason = reason
        super().__init__(f"cannot read {file=}: {reason}" + (f". {hint}" if hint else ""))
