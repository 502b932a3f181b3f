"""CDC end-to-end latency under a steady load: source commit -> Kafka consumer / PostgreSQL row visible.

On a private ``wal_level = logical`` cluster and librdkafka's mock Kafka cluster, for each sink in
turn (Kafka, then PostgreSQL):

1. the CDC runner starts in a process of its own (``cdc_child.py``, streaming until SIGTERM; the
   PostgreSQL pipeline takes its initial snapshot first) and a probe update is waited for at the
   destination, so the pipeline is live end to end;
2. ``pgbench -R <rate> -T <warm-up + duration>`` (2 connections) runs single-row UPDATE
   transactions (``SET qty = qty + 1, updated_at = clock_timestamp() WHERE id = random``), i.e.
   ``--rate`` changes/s on average (pgbench's rate limit schedules transactions as a Poisson
   process);
3. the destination is watched from this process:
   - Kafka: a consumer (``fetch.wait.max.ms`` set to 10 ms: a latency-sensitive consumer's
     setting, see README) assigned to every partition of the topic; latency = time of receipt -
     the event's ``source.ts_ms`` (the source transaction's commit time, in ms: up to 1 ms too high);
   - PostgreSQL: a poller querying the destination every 10 ms for rows with ``updated_at`` above
     the last seen (an index on it is created, untimed); latency = start of the poll that first
     sees a row - its ``updated_at`` (set just before the commit; up to the poll interval too high);
4. changes whose source timestamp falls in the first ``--warmup`` seconds are left out; p50, p90,
   p99 and max of the rest are reported, with the runner's own figure (commit on the source ->
   every sink committed, for the first transaction of each batch);
5. checks: Kafka received every change pgbench committed; the destination table equals the source.

Targets (reported, never asserted): p99 < 1 s at 2,000 changes/s.

Rerun: .venv/bin/python bench/cdc_latency.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cdc_common as cc
from common import (
    LOG_DIR,
    PG,
    REPO_DIR,
    RESULTS_MD,
    fmt,
    load_average,
    machine_info,
    md_table,
    print_table,
    tail,
    write_results,
)

TARGET_P99_S = 1.0
DEFAULT_DELAY_MS = 200  # CdcSettings.max_batch_delay_ms
POLL_S = 0.01

PGBENCH_SCRIPT = """\\set id random(1, {rows})
UPDATE public.cdc_orders SET qty = qty + 1, updated_at = clock_timestamp() WHERE id = :id;
"""


@dataclass
class Phase:
    sink: str
    delay_ms: int
    latencies: list[float] = field(default_factory=list)  # seconds, measured window only
    batch_latencies: list[float] = field(default_factory=list)
    committed: int = 0  # transactions pgbench committed
    seen: int = 0  # changes seen at the destination (Kafka: messages)
    tps: float | None = None
    runner: dict[str, Any] | None = None
    error: str | None = None


class KafkaWatcher(threading.Thread):
    """Consumes the topic from the beginning; records (receipt time, source commit ms) per event."""

    def __init__(self, servers: str, topic: str, fetch_wait_ms: int):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer, TopicPartition

        self.c = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": "bench-latency",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": fetch_wait_ms,
                "logger": __import__("logging").getLogger("bench.cdc.consumer"),
            }
        )
        md = self.c.list_topics(topic, timeout=10).topics[topic]
        self.c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for m in self.c.consume(1000, 0.05):
                    now = time.time()
                    if m.error() is not None:
                        self.error = str(m.error())
                        continue
                    if m.value() is None:
                        continue
                    v = json.loads(m.value())
                    self.samples.append((now, v["source"]["ts_ms"] / 1000))
        finally:
            self.c.close()


class PostgresWatcher(threading.Thread):
    """Polls the destination every POLL_S for rows whose updated_at is above the last seen."""

    def __init__(self, url: str, table: str, since: dt.datetime):
        super().__init__(daemon=True)
        self.url = url
        self.table = table
        self.last = since
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                q = f"SELECT updated_at FROM {self.table} WHERE updated_at > %s ORDER BY updated_at"
                while not self.stop.is_set():
                    t = time.time()
                    for (ts,) in conn.execute(q, (self.last,)).fetchall():
                        self.samples.append((t, ts.timestamp()))
                        self.last = ts
                    time.sleep(max(0.0, POLL_S - (time.time() - t)))
        except Exception as e:  # reported with the phase
            self.error = f"{type(e).__name__}: {e}"


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def run_pgbench(cluster: cc.Cluster, script: Path, rate: int, seconds: int, log: Path) -> tuple[int, float]:
    argv = [cc.pg_bin("pgbench"), "-n", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
            "-c", "2", "-j", "1", "-R", str(rate), "-T", str(seconds), "-f", str(script), cc.SRC_DB]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True)
    log.write_text("$ " + " ".join(argv) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {proc.stderr[-1000:]}")
    n = re.search(r"number of transactions actually processed: (\d+)", proc.stdout)
    tps = re.search(r"tps = ([\d.]+)", proc.stdout)
    if n is None or tps is None:
        raise RuntimeError(f"cannot read pgbench's output (log: {log})")
    return int(n.group(1)), float(tps.group(1))


def run_phase(
    cluster: cc.Cluster,
    mock: cc.MockKafka,
    sink: str,
    delay_ms: int,
    args: argparse.Namespace,
    script: Path,
    log_dir: Path,
) -> Phase:
    phase = Phase(sink, delay_ms)
    src = cluster.url(cc.SRC_DB)
    dst = cluster.url(cc.DST_DB)
    pipeline = f"lat_{sink}_{delay_ms}"
    dest = mock.servers if sink == "kafka" else dst
    argv = cc.child_argv(
        sink=sink,
        pipeline=pipeline,
        source=src,
        dest=dest,
        snapshot="never" if sink == "kafka" else "initial",
        until_caught_up=False,
        batch_delay_ms=delay_ms,
    )
    log = log_dir / f"{sink}.{delay_ms}.runner.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb")  # noqa: SIM115 - open while the child runs
    child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    watcher: KafkaWatcher | PostgresWatcher | None = None
    try:
        # Live end to end: a probe update reaches the destination.
        probe = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # after the generated values, before now
        dest_table = f"{cc.DST_SCHEMA}.cdc_orders"
        if sink == "kafka":
            topic = f"{pipeline}.public.cdc_orders"
            wait_for(lambda: cc.value(src, "SELECT count(*) FROM pg_replication_slots WHERE active") > 0, 120,
                     "the runner to start streaming")  # fmt: skip
            cc.pg(src, f"UPDATE {cc.TABLE} SET updated_at = '{probe.isoformat()}' WHERE id = 1")
            wait_for(lambda: mock.message_count(topic) >= 1, 60, "the probe event on Kafka")
            watcher = KafkaWatcher(mock.servers, topic, args.fetch_wait_ms)
        else:
            cc.pg(src, f"UPDATE {cc.TABLE} SET updated_at = '{probe.isoformat()}' WHERE id = 1")

            def probe_seen() -> bool:
                try:
                    return bool(
                        cc.value(dst, f"SELECT count(*) FROM {dest_table} WHERE updated_at = %s", (probe,))
                    )
                except Exception:  # the table appears with the snapshot
                    return False

            wait_for(probe_seen, 180, "the probe row in the destination")
            cc.pg(dst, f"CREATE INDEX IF NOT EXISTS cdc_orders_updated_at ON {dest_table} (updated_at)")
            watcher = PostgresWatcher(dst, dest_table, dt.datetime.now(dt.UTC))
        watcher.start()
        load_start = time.time()
        phase.committed, phase.tps = run_pgbench(
            cluster,
            script,
            args.rate,
            args.warmup + args.duration,
            log_dir / f"{sink}.{delay_ms}.pgbench.log",
        )
        load_end = time.time()
        # Drain: every committed change has arrived.
        if sink == "kafka":
            wait_for(lambda: len(watcher.samples) >= phase.committed + 1, 60, "every change on Kafka")
        else:
            src_max = cc.value(src, f"SELECT max(updated_at) FROM {cc.TABLE}")
            wait_for(lambda: watcher.last >= src_max, 60, "the last change in the destination")
        time.sleep(0.2)
        watcher.stop.set()
        watcher.join(10)
        if watcher.error:
            raise RuntimeError(f"watcher: {watcher.error}")
        phase.seen = len(watcher.samples) - (1 if sink == "kafka" else 0)  # the probe
        lo = load_start + args.warmup
        phase.latencies = [
            seen - committed for seen, committed in watcher.samples if lo <= committed <= load_end
        ]
        if sink == "kafka" and phase.seen != phase.committed:
            phase.error = f"Kafka received {phase.seen:,} events, pgbench committed {phase.committed:,}"
    except Exception as e:
        phase.error = f"{type(e).__name__}: {e}"
    finally:
        if watcher is not None:
            watcher.stop.set()
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        out.close()
    phase.runner = cc.child_summary(log)
    if phase.runner is None:
        phase.error = phase.error or f"the runner printed no summary (exit {child.returncode}):\n{tail(log)}"
    else:
        phase.batch_latencies = phase.runner["batch_latencies"]
    if sink == "postgres" and phase.error is None:
        want = cc.table_digest(src, cc.TABLE)
        got = cc.table_digest(dst, f"{cc.DST_SCHEMA}.cdc_orders")
        if got != want:
            phase.error = f"destination differs from source: {got} != {want}"
    cc.drop_slot(src, f"openfuse_{pipeline}")
    return phase


def ms(x: float | None) -> str:
    return fmt(None if x is None else x * 1000, ",.0f")


def table(phases: list[Phase]) -> tuple[list[str], list[list[str]]]:
    header = ["sink", "batch delay ms", "status", "load (pgbench tps)", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "runner p50/p99 ms", "batches"]  # fmt: skip
    out = []
    for p in phases:
        lat = p.latencies
        b = p.batch_latencies
        out.append(
            [
                p.sink,
                str(p.delay_ms),
                "FAILED" if p.error else "ok",
                fmt(p.tps, ",.0f"),
                f"{len(lat):,}",
                ms(cc.percentile(lat, 50)),
                ms(cc.percentile(lat, 90)),
                ms(cc.percentile(lat, 99)),
                ms(max(lat) if lat else None),
                f"{ms(cc.percentile(b, 50))} / {ms(cc.percentile(b, 99))}",
                f"{len(b):,}",
            ]
        )
    return header, out


def targets(phases: list[Phase], rate: int) -> list[list[str]]:
    out = []
    for p in phases:
        p99 = cc.percentile(p.latencies, 99)
        verdict = "n/a" if p99 is None else "met" if p99 < TARGET_P99_S else "NOT met"
        out.append(
            [
                f"{p.sink}, {rate:,} changes/s, batch delay {p.delay_ms} ms",
                f"p99 < {TARGET_P99_S * 1000:,.0f} ms",
                ms(p99),
                verdict,
            ]
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Rerun: .venv/bin/python bench/cdc_latency.py"
    )
    ap.add_argument(
        "--rate", type=int, default=2_000, help="changes (transactions) per second (default 2,000)"
    )
    ap.add_argument("--duration", type=int, default=60, help="measured seconds per sink (default 60)")
    ap.add_argument("--warmup", type=int, default=5, help="seconds of load left out at the start (default 5)")
    ap.add_argument(
        "--table-rows", type=int, default=100_000, help="rows of the source table (default 100,000)"
    )
    ap.add_argument("--sinks", default="kafka,postgres")
    ap.add_argument(
        "--batch-delay-ms",
        default=str(DEFAULT_DELAY_MS),
        help="the runner's max_batch_delay_ms; a comma-separated list runs each (default 200, the runner's default)",
    )
    ap.add_argument(
        "--fetch-wait-ms", type=int, default=10, help="the Kafka consumer's fetch.wait.max.ms (default 10)"
    )
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args()
    delays = [int(x) for x in args.batch_delay_ms.split(",") if x.strip()]
    sinks = [s for s in args.sinks.split(",") if s]
    if not sinks or not set(sinks) <= {"kafka", "postgres"}:
        ap.error("--sinks: kafka and/or postgres")

    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"cdc_latency-{run_id}"
    log_dir.mkdir(parents=True, exist_ok=True)
    script = log_dir / "update.sql"
    script.write_text(PGBENCH_SCRIPT.format(rows=args.table_rows))
    load_start = load_average()
    print(
        f"starting a private PostgreSQL cluster (wal_level=logical); logs in {log_dir.relative_to(REPO_DIR)}/",
        flush=True,
    )
    cluster = cc.start_cluster()
    mock = cc.MockKafka()
    phases: list[Phase] = []
    try:
        cc.create_source(cluster, args.table_rows)
        info = machine_info(PG("127.0.0.1", cluster.port, "postgres"))
        pg_version = cc.value(cluster.url(), "SHOW server_version")
        for sink, delay_ms in [(s, d) for d in delays for s in sinks]:
            print(
                f"  {sink}, batch delay {delay_ms} ms: {args.rate:,} changes/s for {args.warmup} + "
                f"{args.duration} s ...",
                flush=True,
            )
            p = run_phase(cluster, mock, sink, delay_ms, args, script, log_dir)
            phases.append(p)
            lat = p.latencies
            print(
                f"  {sink}: pgbench {p.tps or 0:,.0f} tps, {len(lat):,} samples, p50 {ms(cc.percentile(lat, 50))} ms, "
                f"p99 {ms(cc.percentile(lat, 99))} ms, max {ms(max(lat) if lat else None)} ms"
                + (f"  FAILED: {p.error}" if p.error else ""),
                flush=True,
            )
    finally:
        mock.close()
        cc.stop_cluster(cluster)
    load_end = load_average()

    header, body = table(phases)
    print_table(header, body, f"CDC end-to-end latency at {args.rate:,} changes/s")
    for name, target, value, verdict in targets(phases, args.rate):
        print(f"  target {name:30s} {target:14s} {value:>8s}  {verdict}")
    failed = [f"- **{p.sink} FAILED**: {p.error.splitlines()[0]}" for p in phases if p.error]
    section = "\n".join(
        [
            "## CDC end-to-end latency, PostgreSQL → Kafka and PostgreSQL, steady load",
            "",
            f"- date: {info['date']} (repository commit {info['commit']})",
            f"- machine: {info['machine']}; load average (1/5/15 min) {load_start} at start, {load_end} at the "
            "end - the host was shared with other work during the run",
            f"- source: a private PostgreSQL {pg_version} cluster started by the script (initdb, 127.0.0.1, "
            f"{cc.settings_note()}); `{cc.TABLE}` ({args.table_rows:,} rows); the PostgreSQL destination "
            f"is a second database of the same cluster; Kafka: librdkafka's mock cluster (3 brokers, over TCP); "
            f"{cc.kafka_versions()}; OpenFuse: {cc.openfuse_version()}",
            f"- load: `pgbench -R {args.rate} -T {args.warmup + args.duration} -c 2` single-row UPDATE transactions "
            f"(Poisson arrivals at {args.rate:,}/s on average); the first {args.warmup} s are left out",
            "- runner: `bench/cdc_child.py` (library API, streaming until SIGTERM), `max_batch_delay_ms` = "
            f"{', '.join(map(str, delays))} ms "
            f"(the runner's default: {DEFAULT_DELAY_MS}), "
            "other settings default; one sink at a time",
            f"- Kafka: latency = receipt by a consumer in the benchmark process (`fetch.wait.max.ms` {args.fetch_wait_ms}) - the "
            "event's `source.ts_ms` (source commit time, ms); PostgreSQL: latency = start of the 10 ms poll that "
            "first sees the row in the destination - the row's `updated_at` (`clock_timestamp()` just before "
            "the commit). `runner` = the runner's own commit-to-all-sinks-committed time of each batch's "
            "first transaction",
            "- checked: Kafka received every transaction pgbench committed; the destination equals the source",
            "",
            md_table(header, body),
            "",
            *(failed + [""] if failed else []),
            "Targets (reported, not asserted):",
            "",
            md_table(["path", "target", "measured", "result"], targets(phases, args.rate)),
            "",
            "Rerun: `.venv/bin/python bench/cdc_latency.py`",
            "",
        ]
    )
    (log_dir / "section.md").write_text(section)
    if not args.no_results:
        write_results(RESULTS_MD, section)
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    else:
        print(f"section for {RESULTS_MD.name} in {(log_dir / 'section.md').relative_to(REPO_DIR)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
