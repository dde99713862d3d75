"""A bounded load generator: N client threads calling a server for T seconds (the serving test and benchmark)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_load(call: Callable[[int], int], clients: int, seconds: float) -> dict:
    """`call(client_index)` makes one request and returns the tokens it generated (raises on failure).
    Returns request count, errors, p50/p99 latency (ms) and generated tokens per second."""
    latencies, errors, tokens, lock = [], [], [0], threading.Lock()
    start = time.monotonic()
    stop_at = start + seconds

    def worker(i: int):
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                n, error = call(i), None
            except Exception as e:
                n, error = 0, f"{type(e).__name__}: {e}"[:200]
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens[0] += n
                if error:
                    errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start  # includes the requests still running at the deadline
    lat = sorted(latencies) or [0.0]
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        "tokens_per_s": round(tokens[0] / elapsed, 1),
    }
