"""Evaluate a run, or compare two image sets.

``python experiments/evaluate.py --workdir RUN [--metrics ...]`` evaluates a run against its own
dataset: it restores the newest (or ``--checkpoint STEP``) checkpoint, samples with the EMA
generator when the run has one, prints a table and merges the results into ``eval_<step>.json``
in the run directory.

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

``--real folder:A --fake folder:B`` compares two folders of images (``--workdir RUN --real
folder:A``: a run's samples, ``--num_images`` of them, default as many as A holds, against A),
with the code of a run's evaluation (``jaxgan.evaluation``), and prints a table (no file is
written). The reference: the real set split at random into two disjoint halves A and B,
``*/real_vs_real`` is each metric of A against B (the noise floor) and ``*/fake_vs_half`` the
same of as many fake images against B. Compare those two, which have the same sizes (FID and SWD
fall as the sets grow, so the full-set fake-vs-real value is not comparable with the floor).
``ms_ssim/real`` and ``modes/*_real`` are the real set's own values.

- Reading: every PNG/JPEG/WebP under the folder (recursively) as the folder dataset reads it
  (EXIF orientation, 8-bit grey when every file is grey, else RGB), centre-cropped to a square and
  resized with antialiasing (PIL BOX for whole factors, else LANCZOS) to the smallest side in the
  real set. The fake images are resized to the real set's resolution where theirs differs (a
  line says so); grey and RGB sets are compared in RGB (grey repeated). Unreadable files are left
  out with one warning line per folder, and counted (``skipped/real``, ``skipped/fake``).
- SWD (PGGAN's): uint8 pixels at that resolution, a Laplacian pyramid down to 16x16, 7x7 patches
  normalised per colour channel, on ``min(N_fake, N_real)`` images of each (a random subset of the
  larger set).
- MS-SSIM (PGGAN's, the TF reference's parameters): uint8, 5 scales, 11x11 Gaussian window,
  random pairs within each set; 16x16 or more.
- FID/KID/PR, ``--features=inception`` (the default when ``--inception_weights`` is given):
  the FID InceptionV3's 2048 pool3 features of pytorch-fid's port, images in [-1, 1]
  (``x / 127.5 - 1``), grey repeated to RGB, resized to 299x299 bilinear with half-pixel centres
  and no antialiasing: as pytorch-fid (and clean-fid's ``legacy_pytorch`` mode; clean-fid's
  default resizes with antialiasing, which gives different values).
- ``--features=digits``: the offline digit classifier's 128 features of 28x28 or 32x32 grey
  digits (white on black, as MNIST; 28x28 padded to 32x32 with black, as the mnist5k data; colour
  made grey), in [-1, 1]; also the ``modes`` metric. Its FIDs are comparable only with each other.
  ``--workdir RUN --real`` picks it for a digit dataset's run (28x28 or 32x32 real images), as
  the run's own evaluation does.
- Without features, FID/KID/PR are left out (a line says what to pass); named in ``--metrics``,
  they are an error.

Bad input (``--fake`` with ``--workdir``, neither ``--workdir`` nor ``--real``, a folder with no
images, an unknown metric, ...) is one line on stderr, ``evaluate.py: error: ...``, exit status 2.
"""

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import warnings

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


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (``evaluate.py: error: ...``), exit status 2."""

    def error(self, message: str):
        raise _BadInput(message)


class _BadInput(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="evaluate.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", default=None, help="a run directory of experiments/run.py")
    p.add_argument(
        "--real",
        default=None,
        help="folder:PATH, the reference images: with --fake, compare two folders; with "
        "--workdir, the run's samples against these instead of the run's dataset",
    )
    p.add_argument(
        "--fake",
        default=None,
        help="folder:PATH, the images to evaluate against --real (resized to --real's "
        "resolution where theirs differs)",
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="comma list of " + ",".join(METRICS) + " (default: a run: those of swd,ms_ssim,modes "
        "that apply to it; --real: swd, ms_ssim and, with features, fid,kid,pr (and modes for "
        "digits))",
    )
    p.add_argument(
        "--num_images",
        type=int,
        default=None,
        help="samples of the run (default 2048; with --real, as many as the real folder holds)",
    )
    p.add_argument("--checkpoint", type=int, default=None, help="step (default: the latest)")
    p.add_argument(
        "--inception_weights",
        default=None,
        help="the FID InceptionV3 weights (.npz, see jaxgan/metrics/inception.py); images "
        "resized to 299x299 bilinear, no antialiasing, as pytorch-fid",
    )
    p.add_argument(
        "--features",
        default=None,
        help="with --real: the features of fid/kid/pr, inception (needs --inception_weights; its "
        "default when given) or digits (the offline digit classifier: 28x28 or 32x32 grey digits)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    try:
        a = _parser().parse_args(argv)
        if a.real is not None or a.fake is not None:
            return _sets(a)
        if a.workdir is None:
            raise _BadInput(
                "pass --workdir RUN (a run against its data), --real folder:A --fake folder:B "
                "(two folders), or --workdir RUN --real folder:A."
            )
        if a.features is not None:
            raise _BadInput(
                "--features applies with --real folder:A; a run against its own dataset takes "
                "its features from the dataset (digits: the digit classifier)."
            )
    except _BadInput as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 2
    num_images = 2048 if a.num_images is None else a.num_images
    try:
        if num_images < 2:
            raise ValueError(f"--num_images must be >= 2, got {num_images}.")
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
            metrics or None, num_images, seed=a.seed, inception_weights=a.inception_weights
        )
    except (ValueError, ConfigError) as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 2
    except CheckpointError as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 1
    _table(result)
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


def _table(result: dict) -> None:
    width = max(len(k) for k in result)
    for k, v in result.items():
        shown = ", ".join(f"{x:.3f}" for x in v) if isinstance(v, list) else v
        print(f"{k:<{width}}  {shown:.5g}" if isinstance(v, float) else f"{k:<{width}}  {shown}")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"evaluate.py: warning: {str(message).splitlines()[0]}\n")


def _sets(a: argparse.Namespace) -> int:
    """``--real folder:A`` with ``--fake folder:B`` or ``--workdir RUN``: a table, no file."""
    try:
        if a.real is None:
            raise _BadInput("--fake folder:B needs --real folder:A, the images to compare with.")
        if a.fake is not None and a.workdir is not None:
            raise _BadInput(
                "--fake and --workdir are both given: compare two folders (--real folder:A "
                "--fake folder:B) or a run's samples with a folder (--workdir RUN --real "
                "folder:A), not both."
            )
        if a.fake is None and a.workdir is None:
            raise _BadInput(
                "--real folder:A needs --fake folder:B, or --workdir RUN for a run's samples."
            )
        if a.workdir is None and (a.num_images is not None or a.checkpoint is not None):
            raise _BadInput(
                "--num_images and --checkpoint choose a run's samples; two folders are "
                "compared whole."
            )
        if a.num_images is not None and a.num_images < 2:
            raise _BadInput(f"--num_images must be >= 2, got {a.num_images}.")
        if a.checkpoint is not None and a.checkpoint < 0:
            raise _BadInput(f"--checkpoint must be a step >= 0, got {a.checkpoint}.")
        from jaxgan import evaluation

        if a.features is not None and a.features not in evaluation.FEATURES:
            raise _BadInput(
                f"--features must be one of {', '.join(evaluation.FEATURES)}, got {a.features!r}."
            )
        if a.inception_weights is not None and not os.path.isfile(a.inception_weights):
            raise _BadInput(f"--inception_weights {a.inception_weights!r} is not a file.")
        if a.features == "inception" and a.inception_weights is None:
            raise _BadInput(
                "--features=inception needs --inception_weights PATH (the FID InceptionV3 "
                "weights, see jaxgan/metrics/inception.py)."
            )
        if a.metrics is not None:
            evaluation.parse_metrics(a.metrics)  # an unknown name: before anything is read
    except (_BadInput, ConfigError) as e:
        sys.stderr.write(f"evaluate.py: error: {e}\n")
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line_warning
        try:
            computed = _compare(a)
        except (_BadInput, ValueError, ConfigError) as e:
            sys.stderr.write(f"evaluate.py: error: {str(e).splitlines()[0]}\n")
            return 2
        except CheckpointError as e:
            sys.stderr.write(f"evaluate.py: error: {e}\n")
            return 1
    result, notes = computed
    _table(result)
    for line in notes:
        print(line)
    return 0


def _compare(a: argparse.Namespace) -> tuple[dict, list[str]]:
    from jaxgan import evaluation

    # Headers first, so that a bad folder or a metric that cannot be computed is refused before
    # anything is decoded, sampled or compiled.
    xla_flags.apply(announce=True, stream=sys.stdout)  # before JAX starts
    real_dir = evaluation.scan_folder(a.real, flag="--real")
    size = real_dir.side
    features = a.features
    run = None
    if a.workdir is not None:
        from jaxgan import open_run

        run = open_run(a.workdir, a.checkpoint)
        dataset = run.config.data.dataset
        kind = evaluation._data_kind(dataset)[0]
        if "images" not in kind:
            raise _BadInput(f"--real compares images; {a.workdir} samples {kind} ({dataset}).")
        if features is None and dataset in evaluation.DIGIT_DATASETS:
            if size in evaluation.DIGIT_SIZES:
                features = "digits"  # as the run's own evaluation
        fake_dir = None
    else:
        fake_dir = evaluation.scan_folder(a.fake, flag="--fake")
    if features is None and a.inception_weights:
        features = "inception"
    grey = True if features == "digits" else None
    metrics = evaluation.check_set_metrics(a.metrics, features=features, resolution=size)
    real = real_dir.read(size, grey or real_dir.grey, flag="--real")
    if run is not None:
        num = len(real.images) if a.num_images is None else a.num_images
        fake = evaluation.run_image_set(
            lambda z: run.sample(z=z), run.config.model.latent_dim, num, a.seed,
            name=f"{a.workdir} (step {run.step})",
        )  # fmt: skip
    else:
        fake = fake_dir.read(size, grey or fake_dir.grey, flag="--fake")
    evaluation.match_sets(fake, real, grey=grey)
    result = evaluation.evaluate_image_sets(
        fake.images, real.images, metrics=metrics, features=features,
        inception_weights=a.inception_weights, seed=a.seed,
    )  # fmt: skip
    n, c = real.images.shape[1], real.images.shape[-1]
    head = {
        "resolution": f"{n}x{n} {'grey' if c == 1 else 'RGB'}",
        "skipped/real": real.skipped,
        "skipped/fake": fake.skipped,
    }
    result = {**head, **result}
    notes = []
    for tag, s in (("real", real), ("fake", fake)):
        line = f"{tag}: {s.name}: {len(s.images)} images"
        if s.resized:
            line += (
                f", {s.resized} resized from {', '.join(s.sizes[:3])}"
                f"{', ...' if len(s.sizes) > 3 else ''} to {n}x{n} (centre-cropped square, "
                "antialiased)"
            )
        if s.skipped:
            line += f"; {s.skipped} of {s.found} image files skipped"
        notes.append(line)
    if any(k.endswith("/real_vs_real") for k in result):
        h = result["num_images/half"]
        notes.append(
            f"*/real_vs_real: two disjoint random halves A, B of the real set ({h} images each), "
            f"the noise floor; */fake_vs_half: {h} fake images against the same B. Compare these "
            "two (the same sizes: FID and SWD fall as the sets grow)"
        )
    if features is None and a.metrics is None:
        notes.append(
            "fid/kid/pr: not computed; pass --inception_weights PATH (the FID InceptionV3), or "
            "--features=digits for 28x28 or 32x32 grey digits"
        )
    return result, notes


if __name__ == "__main__":
    sys.exit(main())
