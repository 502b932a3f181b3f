"""The bundled demo pipeline (`make demo`): Chinook CSV files into DuckDB, no server needed."""

from pathlib import Path

PIPELINE = Path(__file__).with_name("chinook.yaml")
DATA = Path(__file__).with_name("data")

__all__ = ["DATA", "PIPELINE"]
