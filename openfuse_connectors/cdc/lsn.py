"""PostgreSQL log sequence numbers: ``"16/B374D848"`` <-> an integer (what Debezium's ``source.lsn`` holds)."""

from __future__ import annotations

from openfuse_connectors.errors import ConfigError

__all__ = ["format_lsn", "parse_lsn"]


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` -> ``0x16B374D848``."""
    hi, sep, lo = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return (int(hi, 16) << 32) | int(lo, 16)
    except ValueError:
        raise ConfigError(
            "not a PostgreSQL LSN (expected e.g. 16/B374D848)", field="lsn", value=text
        ) from None


def format_lsn(lsn: int) -> str:
    """``0x16B374D848`` -> ``"16/B374D848"``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
