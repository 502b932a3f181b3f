"""Runs one CDC pipeline in a process of its own, for the crash and signal tests (not a test module).

Usage: python cdc_child.py '<json>' with keys source, tables, pipeline, optional dest (URL),
kafka (bootstrap servers), prefix, options (CdcSettings fields), kill_point/kill_at (SIGKILL this
process the kill_at-th time the runner reaches that hook point), until_caught_up, max_seconds.
Prints one JSON line with the run summary when the run ends normally.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import CdcSettings, ChangeSink, KafkaChangeSink, PostgresChangeSink, run_cdc


def main() -> None:
    args = json.loads(sys.argv[1])
    settings = CdcSettings(
        pipeline=args["pipeline"],
        source=PostgresConfig(dsn=args["source"]),
        tables=tuple(args["tables"]),
        **args.get("options", {}),
    )
    sinks: list[ChangeSink] = []
    if args.get("kafka"):
        sinks.append(
            KafkaChangeSink(
                KafkaConfig(bootstrap_servers=(args["kafka"],)),
                pipeline=args["pipeline"],
                topic_prefix=args["prefix"],
            )
        )
    if args.get("dest"):
        sinks.append(
            PostgresChangeSink(PostgresConfig(dsn=args["dest"], schema="mirror"), pipeline=args["pipeline"])
        )
    seen = 0

    def hook(point: str) -> None:
        nonlocal seen
        if point == "committed":
            print(json.dumps({"committed": True}), flush=True)
        if point == args.get("kill_point"):
            seen += 1
            if seen == args["kill_at"]:
                os.kill(os.getpid(), signal.SIGKILL)

    summary = run_cdc(
        settings,
        sinks,
        until_caught_up=args.get("until_caught_up", False),
        max_seconds=args.get("max_seconds"),
        hook=hook,
    )
    print(
        json.dumps(
            {"position": summary.position, "stopped_by": summary.stopped_by, "changes": summary.changes}
        )
    )


if __name__ == "__main__":
    main()
