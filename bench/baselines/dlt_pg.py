"""dlt baseline for bench/pg_to_pg.py and bench/mysql_to_pg.py: copy one SQL table into PostgreSQL.

Runs inside bench/.venv-baselines (never the project's .venv):

    bench/.venv-baselines/bin/python bench/baselines/dlt_pg.py \
        --src postgresql://postgres@127.0.0.1:5432/openfuse_bench_src \
        --dst postgresql://postgres@127.0.0.1:5432/openfuse_bench_dst \
        --table bench_orders --dataset bench_dlt

Extraction: dlt's built-in ``sql_table`` with the ConnectorX backend (the whole table
arrives as one Arrow table). Load: postgres destination, ``write_disposition="replace"``,
``loader_file_format="csv"`` (dlt's documented fast path for Arrow into Postgres: COPY
from CSV) unless ``--file-format`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

# Offline and quiet: no telemetry, no anonymous-usage pings. Must be set before dlt is imported.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")


def with_placeholder_password(url: str) -> str:
    """dlt's PostgresCredentials insists on a password even when the server uses trust auth.

    Give it a placeholder (ignored by a trust-auth server) when the URL has none.
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:unused@{host}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="source PostgreSQL URL")
    ap.add_argument("--dst", required=True, help="destination PostgreSQL URL")
    ap.add_argument("--schema", default="public", help="source schema")
    ap.add_argument("--table", default="bench_orders", help="source table")
    ap.add_argument("--dataset", default="bench_dlt", help="destination schema (dlt dataset)")
    ap.add_argument(
        "--file-format",
        default="csv",
        choices=["csv", "insert_values", "parquet"],
        help="dlt loader file format (default: csv)",
    )
    ap.add_argument(
        "--stream",
        action="store_true",
        help="ConnectorX arrow_stream (batches) instead of dlt's default one-shot Arrow table",
    )
    args = ap.parse_args()

    backend_kwargs = {"protocol": "binary"}
    if args.stream:
        # ConnectorX streaming: Arrow record batches of chunk_size rows instead of one table.
        backend_kwargs["return_type"] = "arrow_stream"

    import dlt
    from dlt.sources.sql_database import sql_table

    table = sql_table(
        credentials=args.src,
        schema=args.schema,
        table=args.table,
        backend="connectorx",
        # dlt's default for ConnectorX, spelled out: binary COPY protocol, one Arrow table.
        backend_kwargs=backend_kwargs,
        reflection_level="full_with_precision",
    )

    # A throw-away pipelines dir: no local state leaks between benchmark repeats.
    with tempfile.TemporaryDirectory(prefix="dlt_bench_") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="bench_pg_to_pg",
            pipelines_dir=pipelines_dir,
            destination=dlt.destinations.postgres(credentials=with_placeholder_password(args.dst)),
            dataset_name=args.dataset,
            progress="log" if os.environ.get("DLT_BENCH_PROGRESS") else None,
        )
        info = pipeline.run(table, write_disposition="replace", loader_file_format=args.file_format)
        info.raise_on_failed_jobs()
        counts = pipeline.last_trace.last_normalize_info.row_counts
        print(f"dlt loaded: {dict(counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
