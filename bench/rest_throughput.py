#!/usr/bin/env python3
"""REST source throughput: OpenFuse's `rest` connector against a bare httpx loop, on loopback.

Rerun (from the repository root, with the project's virtualenv: it needs uvicorn, httpx and
OpenFuse):

    .venv/bin/python bench/rest_throughput.py --records 200000

Options worth knowing:
    --records N     records served (default 200,000), in pages of --page-size (default 100)
    --repeat K      runs per contender, the median is reported (default 3)
    --only a,b      run only these contenders (floor_raw, floor_json, openfuse_extract, openfuse_duckdb)
    --no-results    do not touch bench/RESULTS.md

What it does:
  1. Starts a JSON API on 127.0.0.1 in its own process (uvicorn, one worker, a bare ASGI app: no
     framework cost): `GET /orders?page=P&per_page=100` answers
     `{"data": [100 records], "meta": {"page": P, "total_pages": T}}`. Records look like the rows of
     bench_orders (id, name, qty, amount, updated_at as ISO 8601, a nested payload object), ~200
     bytes of JSON each, deterministic; every page is rendered once at start-up, so the server only
     writes bytes. Its CPU time per run is read from /proc and reported.
  2. Runs every contender --repeat times, round-robin, each a fresh subprocess under
     `/usr/bin/time -v` with the tree-RSS sampler of common.py:
       - `floor_raw`: a plain `httpx.Client` loop fetching every page (keep-alive), body not parsed;
       - `floor_json`: the same loop plus `json.loads` of each body and a count of its records —
         the floor for any client that reads the records;
       - `openfuse_extract`: OpenFuse's REST extractor alone (`RestExtractor.read`, Arrow batches
         counted and dropped): the source's own cost, a sink that costs nothing;
       - `openfuse_duckdb`: `openfuse run PIPELINE --full-refresh`, rest → DuckDB (file deleted
         before each run).
     After every run the record count must be exact (the floors report pages and bytes or records,
     the extractor its rows, DuckDB its table).
  3. Prints a table (records/s, pages/s, peak RSS, CPU, × the JSON floor) and replaces the section
     "## REST source throughput, N records" of bench/RESULTS.md, with the machine and its load
     average at the start and the end. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    GNU_TIME,
    LOG_DIR,
    OPENFUSE_BIN,
    REPO_DIR,
    RESULTS_MD,
    TARGET_RSS_MB,
    fmt,
    indent,
    load_average,
    md_table,
    openfuse_version,
    parse_openfuse_summary,
    print_table,
    run_measured,
    tail,
    write_results,
)

CONTENDERS = ["floor_raw", "floor_json", "openfuse_extract", "openfuse_duckdb"]
STREAM = "orders"
SCHEMA = {
    "id": "int64",
    "name": "string",
    "qty": "int64",
    "amount": "float64",
    "updated_at": "timestamp[us, tz=UTC]",
    "payload": "json",
}
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------------
# The API: pages rendered once, served by a bare ASGI app
# --------------------------------------------------------------------------------------------


def record(g: int) -> dict[str, Any]:
    """Record g (1-based): the same values as common.py's bench_orders row g."""
    md5 = hashlib.md5(str(g).encode()).hexdigest()
    return {
        "id": g,
        "name": f"customer_{g % 100000:06d} {md5[:10]}",
        "qty": g % 97 + 1,
        "amount": ((g * 7919) % 10_000_000) / 100,
        "updated_at": (T0 + dt.timedelta(seconds=17 * g)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "payload": {
            "sku": f"SKU-{g % 5000:05d}",
            "status": ("new", "paid", "shipped", "returned")[g % 4],
            "note": hashlib.md5(str(g * 31).encode()).hexdigest(),
        },
    }


def render_pages(records: int, page_size: int) -> list[bytes]:
    total = -(-records // page_size)
    pages = []
    for p in range(1, total + 1):
        ids = range((p - 1) * page_size + 1, min(p * page_size, records) + 1)
        body = {"data": [record(g) for g in ids], "meta": {"page": p, "total_pages": total}}
        pages.append(json.dumps(body, separators=(",", ":")).encode())
    return pages


def serve(port: int, records: int, page_size: int) -> None:
    import uvicorn

    pages = render_pages(records, page_size)
    empty = json.dumps({"data": [], "meta": {"page": 0, "total_pages": len(pages)}}).encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status, body = 404, b'{"error":"not found"}'
        if scope["path"] == "/health":
            status, body = 200, b"{}"
        elif scope["path"] == "/orders":
            query = dict(kv.split("=", 1) for kv in scope["query_string"].decode().split("&") if "=" in kv)
            try:
                page = int(query.get("page", "1"))
                size = int(query.get("per_page", str(page_size)))
            except ValueError:
                page, size = -1, -1
            if size != page_size:
                status, body = 400, b'{"error":"per_page must be the server page size"}'
            elif 1 <= page <= len(pages):
                status, body = 200, pages[page - 1]
            else:
                status, body = 200, empty
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off", ws="none"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# The contenders that run inside this script (a fresh process each)
# --------------------------------------------------------------------------------------------


def floor(base_url: str, page_size: int, parse: bool, total_pages: int) -> None:
    """Fetch pages until one is empty or the last (total_pages), like the paginator does.

    Without parsing the bodies (`parse` false) it is told the page count (`total_pages`).
    """
    import httpx

    pages = records = size = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        page = 1
        while True:
            resp = client.get("/orders", params={"page": page, "per_page": page_size})
            resp.raise_for_status()
            pages += 1
            size += len(resp.content)
            if parse:
                body = json.loads(resp.content)
                records += len(body["data"])
                if page >= body["meta"]["total_pages"] or not body["data"]:
                    break
            elif page >= total_pages:
                break
            page += 1
    print(json.dumps({"pages": pages, "records": records if parse else None, "bytes": size}))


def rest_config(base_url: str, page_size: int) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "resources": [
            {
                "name": STREAM,
                "path": "/orders",
                "record_selector": "$.data[*]",
                "primary_key": ["id"],
                "schema": SCHEMA,
                "paginator": {
                    "type": "page_number",
                    "page_size_param": "per_page",
                    "page_size": page_size,
                    "total_pages_path": "$.meta.total_pages",
                },
            }
        ],
    }


def extract(base_url: str, page_size: int) -> None:
    from openfuse_connectors.registry import Registry
    from openfuse_connectors.spec import StreamSpec

    ex = Registry.from_entry_points().extractor("rest", rest_config(base_url, page_size))
    rows = batches = 0
    try:
        for batch in ex.read(StreamSpec(name=STREAM), None):
            rows += batch.num_rows
            batches += 1
    finally:
        ex.close()
    print(json.dumps({"records": rows, "batches": batches}))


# --------------------------------------------------------------------------------------------
# Running, reporting
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    label: str
    times: list[float] = field(default_factory=list)
    max_rss: list[float] = field(default_factory=list)
    tree_rss: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None


LABELS = {
    "floor_raw": "plain `httpx.Client` loop over the pages, keep-alive, body not parsed",
    "floor_json": "the same loop + `json.loads` of each body (the floor for reading the records)",
    "openfuse_extract": "OpenFuse `rest` extractor alone (`RestExtractor.read`, Arrow batches counted and dropped)",
    "openfuse_duckdb": "`openfuse run PIPELINE --full-refresh`, rest → DuckDB file",
}


def last_json(log: Path) -> dict[str, Any]:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {}


def duckdb_count(path: Path) -> int | None:
    import duckdb

    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as db:
            [(n,)] = db.sql(f'SELECT count(*) FROM "{STREAM}"').fetchall()
    except duckdb.Error:
        return None
    return int(n)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Rerun: .venv/bin/python bench/rest_throughput.py --records 200000",
    )
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(CONTENDERS), help=f"of {','.join(CONTENDERS)}")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--openfuse", type=Path, default=OPENFUSE_BIN)
    # internal: the server and the in-script contenders, each started as a subprocess
    ap.add_argument(
        "--_role", choices=["serve", "floor_raw", "floor_json", "extract"], help=argparse.SUPPRESS
    )
    ap.add_argument("--_url", help=argparse.SUPPRESS)
    ap.add_argument("--_port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_pages", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._role == "serve":
        serve(args._port, args.records, args.page_size)
        return 0
    if args._role in ("floor_raw", "floor_json"):
        floor(args._url, args.page_size, parse=args._role == "floor_json", total_pages=args._pages)
        return 0
    if args._role == "extract":
        extract(args._url, args.page_size)
        return 0

    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(selected) - set(CONTENDERS):
        ap.error(f"unknown contender(s); choose from {', '.join(CONTENDERS)}")
    if args.records < 1 or args.page_size < 1 or args.repeat < 1:
        ap.error("--records, --page-size and --repeat must be positive")
    if not shutil.which(GNU_TIME):
        sys.exit(f"{GNU_TIME} is required (apt-get install time)")
    pages_n = -(-args.records // args.page_size)
    expected_bytes = sum(len(p) for p in render_pages(args.records, args.page_size))
    me = [sys.executable, str(Path(__file__).resolve()), "--records", str(args.records)]
    me += ["--page-size", str(args.page_size)]

    load_start = load_average()
    print(f"load average (1/5/15 min) at start: {load_start}")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*me, "--_role", "serve", "--_port", str(port)])
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = LOG_DIR / f"rest_throughput-{run_id}"
    results = [Result(n, LABELS[n]) for n in CONTENDERS if n in selected]
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the benchmark API did not start")
            time.sleep(0.2)
        print(
            f"API on {base_url}: {args.records:,} records in {pages_n:,} pages of {args.page_size}, "
            f"{expected_bytes / 2**20:.1f} MiB of JSON; logs in {log_dir.relative_to(REPO_DIR)}/",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="openfuse_bench_") as tmp:
            workdir = Path(tmp)
            duck = workdir / "rest.duckdb"
            pipeline = workdir / "rest_duckdb.yaml"
            pipeline.write_text(
                json.dumps(
                    {
                        "name": "bench_rest",
                        "source": {"connector": "rest", "config": rest_config(base_url, args.page_size)},
                        "destination": {"connector": "duckdb", "config": {"path": str(duck)}},
                        "streams": [{"name": STREAM, "mode": "full_refresh_overwrite"}],
                    },
                    indent=2,
                )
            )
            argv = {
                "floor_raw": [*me, "--_role", "floor_raw", "--_url", base_url, "--_pages", str(pages_n)],
                "floor_json": [*me, "--_role", "floor_json", "--_url", base_url],
                "openfuse_extract": [*me, "--_role", "extract", "--_url", base_url],
                "openfuse_duckdb": [str(args.openfuse), "run", str(pipeline), "--full-refresh"],
            }
            # One untimed pass so every page has been sent once (allocator, socket buffers).
            subprocess.run(argv["floor_raw"], check=True, capture_output=True)
            for rep in range(1, args.repeat + 1):
                for r in results:
                    if r.error:
                        continue
                    for p in workdir.glob("rest.duckdb*"):
                        p.unlink()
                    s0 = cpu_seconds(server.pid)
                    m = run_measured(argv[r.name], log_dir / f"{r.name}.{rep}.log", cwd=workdir)
                    server_cpu = cpu_seconds(server.pid) - s0
                    if r.name == "openfuse_duckdb":
                        count = duckdb_count(duck)
                        ok = count == args.records
                        got = f"{count} rows in DuckDB"
                    else:
                        out = last_json(m.log)
                        if r.name == "floor_raw":
                            ok = out.get("pages") == pages_n and out.get("bytes") == expected_bytes
                            got = f"{out.get('pages')} pages, {out.get('bytes')} bytes"
                        else:
                            ok = out.get("records") == args.records
                            got = f"{out.get('records')} records"
                    line = (
                        f"  {r.name:17s} run {rep}/{args.repeat}: {m.seconds:6.2f} s, "
                        f"peak RSS {m.max_rss_mb or 0:4.0f} MB, CPU {m.cpu_seconds or 0:5.2f} s, "
                        f"server CPU {server_cpu:5.2f} s"
                    )
                    if m.rc != 0 or not ok:
                        r.error = f"exit status {m.rc}, {got} (log: {m.log})"
                        print(f"{line}  FAILED: {r.error}\n" + indent(tail(m.log)), flush=True)
                        continue
                    print(f"{line}  ok ({got})", flush=True)
                    r.times.append(m.seconds)
                    r.max_rss.append(m.max_rss_mb or 0.0)
                    r.tree_rss.append(m.tree_rss_mb)
                    r.cpu.append(m.cpu_seconds or 0.0)
                    r.server_cpu.append(server_cpu)
                    if r.name == "openfuse_duckdb":
                        summary = parse_openfuse_summary(m.log, STREAM)
                        if summary:
                            r.engine.append(summary.seconds)
    finally:
        server.terminate()
        server.wait(10)
    load_end = load_average()
    print(f"load average (1/5/15 min) at the end: {load_end}")

    floor_json = next((r.median for r in results if r.name == "floor_json"), None)
    header = [
        "contender",
        "status",
        "median s",
        "min s",
        "max s",
        "records/s",
        "pages/s",
        "CPU s",
        "server CPU s",
        "peak RSS MB",
        "tree RSS MB",
        "× floor_json",
    ]
    rows = []
    for r in results:
        med = r.median
        ok = med is not None
        rows.append(
            [
                r.name,
                "FAILED" if r.error else "ok" if r.times else "not run",
                fmt(med),
                fmt(min(r.times) if ok else None),
                fmt(max(r.times) if ok else None),
                fmt(args.records / med if ok else None, ",.0f"),
                fmt(pages_n / med if ok else None, ",.0f"),
                fmt(statistics.median(r.cpu) if ok else None),
                fmt(statistics.median(r.server_cpu) if ok else None),
                fmt(max(r.max_rss) if ok else None, ".0f"),
                fmt(max(r.tree_rss) if ok else None, ".0f"),
                fmt(med / floor_json if ok and floor_json else None),
            ]
        )
    title = (
        f"REST source throughput, {args.records:,} records ({args.page_size}/page, median of {args.repeat})"
    )
    print_table(header, rows, title)
    by = {r.name: r for r in results}
    checks = []
    of = by.get("openfuse_duckdb")
    for name in ("openfuse_extract", "openfuse_duckdb"):
        if name in by and by[name].median:
            rss = max(by[name].max_rss)
            verdict = "met" if rss <= TARGET_RSS_MB else "NOT met"
            checks.append([name, f"peak RSS ≤ {TARGET_RSS_MB:g} MB", f"{rss:.0f} MB", verdict])
    for c in checks:
        print(f"  target {c[0]:17s} {c[1]:30s} {c[2]:>8s}  {c[3]}")

    if not args.no_results:
        import platform

        import httpx
        import uvicorn

        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        engine = statistics.median(of.engine) if of and of.engine and not of.error else None
        parts = [
            f"## REST source throughput, {args.records:,} records",
            "",
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.machine()}; "
            f"load average (1/5/15 min) {load_start} at start, {load_end} at the end; the host is shared, "
            "other work on it is noise",
            f"- API: a bare ASGI app under uvicorn {uvicorn.__version__} (one process, its own core at best: "
            f"2 CPUs are shared by server and client), 127.0.0.1, {pages_n:,} pages of {args.page_size} "
            f"records, {expected_bytes / 2**20:.1f} MiB of JSON, pre-rendered; `server CPU s` is its CPU "
            "time during the run",
            f"- client: httpx {httpx.__version__}; {openfuse_version(args.openfuse)}; {args.repeat} runs per "
            "contender, round-robin, each a fresh process (start-up and imports included); median reported",
            "- contenders:",
            *[f"  - `{r.name}`: {r.label}" for r in results],
            *(
                [
                    f"- `openfuse_duckdb` engine time (the stream's seconds in `openfuse run`'s summary): {engine:.2f} s"
                ]
                if engine
                else []
            ),
            "",
            md_table(header, rows),
            "",
            *[f"- **{r.name} FAILED**: {r.error}" for r in results if r.error],
            "Targets (reported, not asserted):",
            "",
            md_table(["contender", "target", "measured", "result"], checks),
            "",
            f"Rerun: `.venv/bin/python bench/rest_throughput.py --records {args.records}`",
            "",
        ]
        write_results(RESULTS_MD, "\n".join(parts))
        print(f"wrote {RESULTS_MD.relative_to(REPO_DIR)}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
