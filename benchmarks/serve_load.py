"""Throughput and latency of ``zerodce serve`` for 1080p JPEGs under concurrent clients (loopback only).

    python benchmarks/serve_load.py                      # 8 clients, 64 requests, default workers
    python benchmarks/serve_load.py --clients 8 --requests 96 --workers 2 --queue 16
    python benchmarks/serve_load.py --denoise off --strength 1   # other arguments go to zerodce serve

Starts a real ``zerodce serve`` on 127.0.0.1 (a free port), sends the 1920x1080
photos of ``$ZERODCE_SHARED/data/real_highres`` (as JPEG, quality 90, made once
in memory) from ``--clients`` threads, each waiting for its answer before the
next request, and prints requests/s, megapixels/s and the p50/p95 latency of the
requests. The queue is sized so that no request is refused (a 503 is counted and
reported, not retried). Bounded: ``--requests`` requests, then the server is stopped.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from serve_helpers import Server  # noqa: E402  (the tests' real-server helper: same start-up and client)


def photos(shared: Path) -> list[bytes]:
    """The 1920x1080 photos of the shared folder as JPEG bytes."""
    found = []
    for path in sorted((shared / "data" / "real_highres").glob("*.png")):
        with Image.open(path) as im:
            if im.size == (1920, 1080):
                buffer = io.BytesIO()
                im.convert("RGB").save(buffer, format="JPEG", quality=90)
                found.append(buffer.getvalue())
    if not found:
        sys.exit(f"serve_load: no 1920x1080 PNG in {shared / 'data' / 'real_highres'} (set ZERODCE_SHARED)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--workers", type=int, help="server --workers (default: the server's, one per core)")
    parser.add_argument("--queue", type=int, help="server --queue (default: enough for every client)")
    args, serve_args = parser.parse_known_args()
    shared = Path(os.environ.get("ZERODCE_SHARED", REPO.parent / "shared"))
    images = photos(shared)
    server_args = ["--queue", str(args.queue if args.queue is not None else args.clients), *serve_args]
    if args.workers:
        server_args += ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        run(args, serve_args, images, Server(Path(tmp), *server_args))


def run(args: argparse.Namespace, serve_args: list[str], images: list[bytes], server: Server) -> None:
    try:
        workers = server.get("/healthz").json()["workers"]
        for data in images[:2]:  # warm-up
            server.post_file(data, filename="warm.jpg")

        def one(i: int) -> tuple[int, float]:
            start = time.perf_counter()
            reply = server.post_file(images[i % len(images)], filename=f"photo{i}.jpg")
            return reply.status, time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as clients:
            results = list(clients.map(one, range(args.requests)))
        seconds = time.perf_counter() - start
        peak = server.peak_rss_mb()
    finally:
        server.stop()
    ok = [t for status, t in results if status == 200]
    refused = sum(status == 503 for status, _ in results)
    others = [status for status, _ in results if status not in (200, 503)]
    p50, p95 = np.percentile(ok, [50, 95]) if ok else (float("nan"), float("nan"))
    print(f"zerodce serve {' '.join(serve_args)}, {workers} worker(s), {args.clients} clients, {args.requests} requests of 1920x1080 JPEG "
          f"(q90), {os.cpu_count()} CPUs:")
    print(f"  {len(ok) / seconds:.2f} requests/s, {len(ok) * 1920 * 1080 / 1e6 / seconds:.1f} MP/s; "
          f"latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, mean {statistics.mean(ok) * 1000:.0f} ms; "
          f"{refused} x 503, other statuses {others or 'none'}; server peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
