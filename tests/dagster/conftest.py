"""Fixtures of the Dagster tests: ``cdc_cluster`` and ``cdc_source_db`` (the private
logical-decoding cluster) come from ``tests/conftest.py``, shared with the CDC and API tests."""
