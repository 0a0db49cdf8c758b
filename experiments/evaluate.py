"""Evaluate a run: ``python experiments/evaluate.py --workdir RUN [--metrics ...]``.

Restores the newest (or ``--checkpoint STEP``) checkpoint, samples with the EMA generator when the
run has one, prints a table and writes ``eval_<step>.json`` into the run directory.
"""

import argparse
import json
import os
import sys

from jaxgan import xla_flags
from jaxgan.evaluation import METRICS
from jaxgan.training.config import ConfigError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__)
    p.add_argument("--workdir", required=True, help="a run directory of experiments/run.py")
    p.add_argument(
        "--metrics", default="swd,ms_ssim,modes", help="comma list of " + ",".join(METRICS)
    )
    p.add_argument("--num_images", type=int, default=2048)
    p.add_argument("--checkpoint", type=int, default=None, help="step (default: the latest)")
    p.add_argument("--inception_weights", default=None, help="InceptionV3 FID weights (.npz)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    metrics = tuple(m.strip() for m in a.metrics.split(",") if m.strip())
    try:
        if a.num_images < 2:
            raise ValueError(f"--num_images must be >= 2, got {a.num_images}.")
        xla_flags.apply(announce=True)  # before open_run starts JAX
        from jaxgan import open_run

        run = open_run(a.workdir, a.checkpoint)
        result = run.evaluate(
            metrics, a.num_images, seed=a.seed, inception_weights=a.inception_weights
        )
    except (ValueError, ConfigError) as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 2
    width = max(len(k) for k in result)
    for k, v in result.items():
        shown = ", ".join(f"{x:.3f}" for x in v) if isinstance(v, list) else v
        print(f"{k:<{width}}  {shown:.5g}" if isinstance(v, float) else f"{k:<{width}}  {shown}")
    path = os.path.join(a.workdir, f"eval_{run.step}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
