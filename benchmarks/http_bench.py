"""HTTP benchmark: eventdocs against a bare falcon app, same server, same load.

Starts ``benchmarks/bare_app.py`` and ``eventdocs serve examples/blog.json``
(one worker, a SQLite file: every create is durable when answered) one after
the other, and loads each with ``wrk`` at 64 connections: ``GET`` by id over
a few hundred seeded documents, then ``POST`` creates (the bare app echoes).
Reports requests per second, p99 latency and eventdocs/bare ratios::

    python benchmarks/http_bench.py            # a table
    python benchmarks/http_bench.py --json     # one JSON object

Without ``wrk`` on the PATH it falls back to a small asyncio/httpx load
generator (much slower; the ratios are then only indicative).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
POST_BODY = {"title": "Hello", "blog": 1, "author": "ann", "tags": ["a", "b"]}
TARGETS = {"post": 0.7, "get": 0.75}
SEEDED = 500

_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d,'
    .. ' "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], port: int, log: Path) -> Iterator[str]:
    """Run ``command`` until the block ends; yields its base URL once it answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited:\n{log.read_text()}")
            try:
                httpx.get(f"{base}/v1/post/warmup", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield base
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def seed(base: str) -> list[str]:
    """Create the documents the GET benchmark reads (the bare app echoes, ids are made up)."""
    ids = []
    with httpx.Client(base_url=base) as client:
        for n in range(SEEDED):
            answer = client.post("/v1/post", json={**POST_BODY, "title": f"Seed {n}"}).json()
            ids.append(answer.get("id", f"doc{n}"))
    return ids


def lua_script(path: Path, method: str, ids: list[str]) -> Path:
    if method == "GET":
        listed = ",".join(json.dumps(i) for i in ids)
        body = f"""
local ids = {{{listed}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/post/" .. ids[(n % #ids) + 1])
end
"""
    else:
        body = f"""
wrk.method = "POST"
wrk.body = {json.dumps(json.dumps(POST_BODY))}
wrk.headers["Content-Type"] = "application/json"
"""
    path.write_text(body + _DONE)
    return path


def run_wrk(base: str, script: Path, seconds: float, connections: int) -> dict[str, Any]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"{base}/v1/post",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    raw = json.loads(out.strip().splitlines()[-1])
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
        "errors": raw["non_2xx"] + raw["socket_errors"],
    }


async def _httpx_load(
    base: str, method: str, ids: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        stop = time.monotonic() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            n = offset
            while time.monotonic() < stop:
                n += 1
                start = time.perf_counter()
                if method == "GET":
                    answer = await client.get(f"/v1/post/{ids[n % len(ids)]}")
                else:
                    answer = await client.post("/v1/post", json=POST_BODY)
                latencies.append(time.perf_counter() - start)
                errors += answer.status_code >= 300

        began = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "requests": len(latencies),
        "errors": errors,
    }


def load(base: str, name: str, ids: list[str], work: Path, args: argparse.Namespace) -> Any:
    """One warmed-up run of ``name`` (get or post) against ``base``."""
    method = "GET" if name == "get" else "POST"
    if shutil.which("wrk"):
        script = lua_script(work / f"{name}.lua", method, ids)
        if args.warmup:
            run_wrk(base, script, args.warmup, args.connections)
        return run_wrk(base, script, args.duration, args.connections)
    return asyncio.run(_httpx_load(base, method, ids, args.duration, args.connections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "memory"])
    parser.add_argument(
        "--cli", action="store_true", help="start `eventdocs serve` instead of the module"
    )
    parser.add_argument(
        "--no-views",
        action="store_true",
        help="serve blog.json without its view: creates take the one-commit path",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eventdocs-bench-") as tmp:
        work = Path(tmp)
        store = "memory:" if args.backend == "memory" else str(work / "bench.db")
        serve = (
            [shutil.which("eventdocs") or "eventdocs", "serve"]
            if args.cli
            else [sys.executable, "-m", "eventdocs.http.serve"]
        )
        target = ROOT / "examples" / "blog.json"
        if args.no_views:  # a view folds in a projector step; without one, in the append
            declared = json.loads(target.read_text())
            declared.pop("views", None)
            target = work / "blog_without_views.json"
            target.write_text(json.dumps(declared))
        apps = {
            "bare": [sys.executable, str(ROOT / "benchmarks" / "bare_app.py")],
            "eventdocs": [*serve, str(target), "--store", store],
        }
        results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in apps}
        with contextlib.ExitStack() as stack:
            bases, ids = {}, {}
            for name, command in apps.items():
                port = free_port()
                started = server([*command, "--port", str(port)], port, work / f"{name}.log")
                bases[name] = stack.enter_context(started)
                ids[name] = seed(bases[name])
            # Both servers stay up (the idle one costs nothing) and the runs alternate,
            # so a machine busy with something else weighs on both alike.
            for kind in ("get", "post"):
                for name in apps:
                    results[name][kind] = load(bases[name], kind, ids[name], work, args)

    ratios = {k: results["eventdocs"][k]["rps"] / results["bare"][k]["rps"] for k in TARGETS}
    report = {
        "load": "wrk" if shutil.which("wrk") else "httpx",
        "connections": args.connections,
        "duration_s": args.duration,
        "backend": args.backend,
        "views": not args.no_views,
        "results": results,
        "ratios": ratios,
        "targets": TARGETS,
        "met": {k: ratios[k] >= TARGETS[k] for k in TARGETS},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'':22}{'req/s':>10}{'p99 ms':>10}{'errors':>8}")
    for app, rows in results.items():
        for kind, row in rows.items():
            label = f"{app} {'POST create' if kind == 'post' else 'GET by id'}"
            print(f"{label:22}{row['rps']:>10.0f}{row['p99_ms']:>10.1f}{row['errors']:>8}")
    for kind, ratio in ratios.items():
        mark = "met" if ratio >= TARGETS[kind] else "MISSED"
        print(f"ratio {kind}: {ratio:.2f} (target {TARGETS[kind]}) {mark}")


if __name__ == "__main__":
    main()
