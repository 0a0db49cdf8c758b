"""Input-pipeline throughput (images/s) of ``jaxgan.data.load`` per resolution.

Sources:
- ``folder``: a temporary folder of JPEGs (default 256 files of 300x300; native resolution 256),
  decoded once and cached in memory (the default for folders that fit the cache budget);
- ``folder-lazy``: the same folder with the cache disabled (every image decoded from its file
  each time: the regime of folders too large to cache);
- ``mnist5k``: native resolution 32, so only 32 is measured.

Each figure is batches of the global batch size pulled through ``next(pipe)`` (gather, box
downsampling, mirror flips, scaling, host-to-device transfer and prefetch threads included),
after a warm-up, waiting for each batch to be ready on device. Setup time (scan + decode) is
reported separately.

Usage: ``python benchmarks/data_throughput.py [--batch 64] [--batches 40] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RESOLUTIONS = (32, 128, 256)


def make_folder(root: str, n: int, size: int, seed: int = 0) -> None:
    """Write ``n`` JPEG files of ``size`` x ``size`` smooth random colour images under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        f = rng.uniform(1, 6, size=(3, 2))
        ph = rng.uniform(0, 2 * np.pi, size=3)
        img = np.stack(
            [np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + ph[c]) for c in range(3)], -1
        )
        img = (127.5 * (img + 1) + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
        sub = os.path.join(root, f"part{i % 4}")
        os.makedirs(sub, exist_ok=True)
        Image.fromarray(img).save(os.path.join(sub, f"img{i:04d}.jpg"), quality=90)


def measure(spec: str, resolution: int, batch: int, batches: int, warmup: int) -> dict:
    from jaxgan import data

    t0 = time.perf_counter()
    pipe = data.load(spec, batch_size=batch, resolution=resolution, seed=0, mirror=True)
    setup = time.perf_counter() - t0
    for _ in range(warmup):
        next(pipe)["x"].block_until_ready()
    t0 = time.perf_counter()
    for _ in range(batches):
        next(pipe)["x"].block_until_ready()
    dt = time.perf_counter() - t0
    pipe.close()
    return {
        "resolution": resolution,
        "images_per_s": batches * batch / dt,
        "ms_per_batch": 1e3 * dt / batches,
        "setup_s": setup,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64, help="global batch size")
    ap.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--files", type=int, default=256, help="JPEGs in the temporary folder")
    ap.add_argument("--size", type=int, default=300, help="side of each JPEG")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "data_throughput.json"))
    args = ap.parse_args()

    import jax

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(tmp, args.files, args.size)
        for source, env in (("folder", None), ("folder-lazy", "0")):
            old = os.environ.get("JAXGAN_DATA_CACHE_MB")
            if env is not None:
                os.environ["JAXGAN_DATA_CACHE_MB"] = env
            try:
                for r in RESOLUTIONS:
                    m = measure(f"folder:{tmp}", r, args.batch, args.batches, args.warmup)
                    rows.append({"source": source, **m})
            finally:
                if old is None:
                    os.environ.pop("JAXGAN_DATA_CACHE_MB", None)
                else:
                    os.environ["JAXGAN_DATA_CACHE_MB"] = old
    m = measure("mnist5k", 32, args.batch, args.batches, args.warmup)
    rows.append({"source": "mnist5k", **m})

    print(f"global batch {args.batch}; {jax.device_count()} {jax.default_backend()} device(s); "
          f"{os.cpu_count()} CPU cores; folder: {args.files} JPEGs {args.size}x{args.size}")  # fmt: skip
    print(f"{'source':<12} {'res':>5} {'images/s':>10} {'ms/batch':>9} {'setup s':>8}")
    for row in rows:
        print(
            f"{row['source']:<12} {row['resolution']:>5} {row['images_per_s']:>10.0f} "
            f"{row['ms_per_batch']:>9.2f} {row['setup_s']:>8.2f}"
        )
    print("mnist5k: native resolution 32, so 128 and 256 are not available (reported: 32 only).")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "batch": args.batch,
                "batches": args.batches,
                "files": args.files,
                "file_size": args.size,
                "devices": jax.device_count(),
                "backend": jax.default_backend(),
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "note": "mnist5k has native resolution 32: only 32 is measured.",
                "rows": rows,
            },
            f,
            indent=2,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
