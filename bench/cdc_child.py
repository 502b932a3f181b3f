"""The CDC runner with one sink, in a process of its own (started by the CDC benchmarks).

Captures ``public.cdc_orders`` of ``--source`` into Kafka (``--dest`` = bootstrap servers, topic
prefix = the pipeline name) or PostgreSQL (``--dest`` = URL, schema ``mirror``) through the
library API (``CdcSettings`` + a sink + ``run_cdc``), until caught up or until SIGTERM/SIGINT, and
prints ``SUMMARY {json}`` last: the runner's summary, its own timing and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sink", choices=("kafka", "postgres"), required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--source", required=True, help="source PostgreSQL URL")
    ap.add_argument("--dest", required=True, help="bootstrap servers (kafka) or destination URL (postgres)")
    ap.add_argument("--table", default="public.cdc_orders")
    ap.add_argument("--snapshot", choices=("initial", "never"), default="never")
    ap.add_argument("--until-caught-up", action="store_true")
    ap.add_argument("--batch-delay-ms", type=int, default=None)
    args = ap.parse_args()

    t_import = time.perf_counter()
    from openfuse_connectors.builtin.kafka.config import KafkaConfig
    from openfuse_connectors.builtin.postgres.config import PostgresConfig
    from openfuse_connectors.cdc import CdcSettings, KafkaChangeSink, PostgresChangeSink, run_cdc
    from openfuse_connectors.cdc.sink import ChangeSink

    import_s = time.perf_counter() - t_import
    extra = {} if args.batch_delay_ms is None else {"max_batch_delay_ms": args.batch_delay_ms}
    settings = CdcSettings(
        pipeline=args.pipeline,
        source=PostgresConfig(dsn=args.source),
        tables=(args.table,),
        snapshot=args.snapshot,
        **extra,
    )
    sink: ChangeSink
    if args.sink == "kafka":
        sink = KafkaChangeSink(
            KafkaConfig(bootstrap_servers=(args.dest,)), pipeline=args.pipeline, topic_prefix=args.pipeline
        )
    else:
        sink = PostgresChangeSink(PostgresConfig(dsn=args.dest, schema="mirror"), pipeline=args.pipeline)
    print(f"READY {time.time():.6f}", flush=True)
    t0 = time.perf_counter()
    summary = run_cdc(settings, [sink], until_caught_up=args.until_caught_up)
    wall = time.perf_counter() - t0
    out = {
        "pipeline": summary.pipeline,
        "slot": summary.slot,
        "snapshot_rows": summary.snapshot_rows,
        "changes": summary.changes,
        "transactions": summary.transactions,
        "commits": summary.commits,
        "position": summary.position,
        "stopped_by": summary.stopped_by,
        "seconds": summary.seconds,
        "run_wall_s": wall,
        "import_s": import_s,
        "batch_latencies": summary.latencies,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
    }
    print("SUMMARY " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
