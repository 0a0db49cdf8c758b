"""Throughput of SWD and MS-SSIM (images/s) at 32, 128 and 1024 px.

Usage: python benchmarks/metrics_throughput.py [--out PATH] [--sizes 32,128,1024]

SWD: two sets of N random RGB images each (PGGAN settings: 128 patches per image and level,
4 x 128 directions); images/s counts both sets, descriptor extraction and distance included.
MS-SSIM: N pairs; images/s counts both images of each pair. Each measurement runs once to compile
(reported as ``first_s``) and is then timed again (``seconds``, ``images_per_s``). Image counts are
small at 1024 px so the script finishes in a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

DEFAULT_COUNTS = {32: 1024, 128: 256, 1024: 16}


def _time(fn: Callable[[], Any]) -> tuple[float, float]:
    """(first call incl. compilation, second call) wall seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    start = time.perf_counter()
    fn()
    return first, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/metrics_throughput.json")
    parser.add_argument("--sizes", default="32,128,1024", help="comma-separated image sizes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import jax

    from jaxgan.metrics.ms_ssim import ms_ssim
    from jaxgan.metrics.swd import sliced_wasserstein

    rng = np.random.default_rng(args.seed)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        n = DEFAULT_COUNTS.get(size, max(2, 2**24 // (size * size * 3)))
        a = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
        for metric, fn in (
            ("swd", lambda a=a, b=b: sliced_wasserstein(a, b, args.seed)),
            ("ms_ssim", lambda a=a, b=b: ms_ssim(a, b)),
        ):
            first, seconds = _time(fn)
            rows.append(
                {
                    "metric": metric,
                    "size": size,
                    "images": 2 * n,
                    "first_s": round(first, 3),
                    "seconds": round(seconds, 3),
                    "images_per_s": round(2 * n / seconds, 1),
                }
            )
            print(f"{metric:8s} {size:5d}px  {2 * n:6d} images  {seconds:8.2f} s", flush=True)

    device = jax.devices()[0]
    result = {
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "rows": rows,
    }
    print()
    print(f"backend: {result['backend']} ({result['device']}), {result['cpu_count']} CPUs")
    print("| metric  | size px | images | first run s | timed s | images/s |")
    print("|---------|---------|--------|-------------|---------|----------|")
    for r in rows:
        print(
            f"| {r['metric']:7s} | {r['size']:7d} | {r['images']:6d} | {r['first_s']:11.2f} "
            f"| {r['seconds']:7.2f} | {r['images_per_s']:8.1f} |"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
