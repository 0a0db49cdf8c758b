"""Evaluate a run: ``python experiments/evaluate.py --workdir RUN [--metrics ...]``.

Restores the newest (or ``--checkpoint STEP``) checkpoint, samples with the EMA generator when the
run has one, prints a table and merges the results into ``eval_<step>.json`` in the run directory.

- ``--metrics`` must apply to the run's data (``modes`` for the toys' 2-D points; SWD, MS-SSIM,
  FID/KID/PR for images; ``modes`` for digits too): another, or an unknown name, is one line on
  stderr and exit status 2, and nothing is written. Left out: those of swd, ms_ssim and modes
  that apply and compute at the checkpoint's resolution.
- ``eval_<step>.json`` is merged, never replaced with less: the metrics computed now replace their
  earlier values, the earlier values of the others are kept, and its ``evaluated`` entry says with
  which ``num_images`` and ``seed`` each metric was computed. It is written atomically (a temporary
  file in the run directory, then renamed over it), so a failed or interrupted write leaves the
  earlier file whole.
- Where the file cannot be written (a read-only run directory, a full disk), the table is still
  printed, one line on stderr says where it could not write, and the exit status stays 0: the
  evaluation itself succeeded.
"""

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile

from jaxgan import xla_flags
from jaxgan.errors import CheckpointError, ConfigError
from jaxgan.evaluation import METRICS

#: The keys of a result that belong to no one metric.
_SHARED = ("step", "images_seen", "num_images", "evaluated")


def _metric_of(key: str) -> str | None:
    """The metric a result key belongs to (``swd/mean`` -> ``swd``), None for a shared one."""
    head = key.split("/", 1)[0]
    return head if head in METRICS else None


def merged(old: dict, result: dict, metrics: tuple[str, ...], seed: int) -> dict:
    """``old`` (an earlier ``eval_<step>.json``) with ``result`` (this call's, of ``metrics``)
    merged in: the computed metrics' keys replaced, everything else kept."""
    computed = set(metrics)
    evaluated = dict(old.get("evaluated") or {})
    for m in sorted({_metric_of(k) for k in old} - computed - {None}):
        if m not in evaluated:  # from a file written before the settings were recorded
            evaluated[m] = {"num_images": old.get("num_images")}
    for m in metrics:
        evaluated[m] = {"num_images": result["num_images"], "seed": seed}
    out = {k: v for k, v in old.items()
           if k not in _SHARED and k not in result and _metric_of(k) not in computed}  # fmt: skip
    return {
        **{k: result[k] for k in _SHARED if k in result},
        **out,
        **result,
        "evaluated": evaluated,
    }


def write_merged(path: str, result: dict, metrics: tuple[str, ...], seed: int) -> None:
    """Merge ``result`` into the JSON file at ``path`` (see :func:`merged`), atomically; two
    evaluations of one run take turns (an advisory lock on the directory). OSError when it cannot:
    the file there, if any, is then as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    fd = os.open(folder, os.O_RDONLY)
    tmp = None
    try:
        with contextlib.suppress(OSError):  # where locks are not supported: no turns
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                old = json.load(f)
        except FileNotFoundError:
            old = {}
        except ValueError as e:
            raise OSError(f"the file there is not JSON ({e}); move it away to write this") from None
        if not isinstance(old, dict):
            raise OSError("the file there is not a JSON object; move it away to write this")
        with tempfile.NamedTemporaryFile(
            "w", dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp", delete=False
        ) as f:
            tmp = f.name
            json.dump(merged(old, result, metrics, seed), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        os.close(fd)  # releases the lock


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__)
    p.add_argument("--workdir", required=True, help="a run directory of experiments/run.py")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma list of " + ",".join(METRICS) + " (default: those of swd,ms_ssim,modes that "
        "apply to the run)",
    )
    p.add_argument("--num_images", type=int, default=2048)
    p.add_argument("--checkpoint", type=int, default=None, help="step (default: the latest)")
    p.add_argument("--inception_weights", default=None, help="InceptionV3 FID weights (.npz)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        if a.num_images < 2:
            raise ValueError(f"--num_images must be >= 2, got {a.num_images}.")
        if a.checkpoint is not None and a.checkpoint < 0:
            raise ValueError(f"--checkpoint must be a step >= 0, got {a.checkpoint}.")
        # Before open_run starts JAX; said on stdout, so that stderr holds one line for an error.
        xla_flags.apply(announce=True, stream=sys.stdout)
        from jaxgan import evaluation, open_run

        run = open_run(a.workdir, a.checkpoint)
        if a.metrics is None:
            metrics = evaluation.default_metrics(run.config.data.dataset, run.phase.resolution)
        else:
            metrics = evaluation.check_metrics(
                a.metrics, run.config.data.dataset, inception_weights=a.inception_weights
            )
        result = run.evaluate(
            metrics or None, a.num_images, seed=a.seed, inception_weights=a.inception_weights
        )
    except (ValueError, ConfigError) as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 2
    except CheckpointError as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 1
    width = max(len(k) for k in result)
    for k, v in result.items():
        shown = ", ".join(f"{x:.3f}" for x in v) if isinstance(v, list) else v
        print(f"{k:<{width}}  {shown:.5g}" if isinstance(v, float) else f"{k:<{width}}  {shown}")
    path = os.path.join(a.workdir, f"eval_{run.step}.json")
    try:
        write_merged(path, result, metrics, a.seed)
    except OSError as e:
        why = e.strerror or str(e)
        sys.stderr.write(
            f"evaluate.py: could not write {path}: {why}; the results are only in the table "
            "above.\n"
        )
        return 0
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
