"""Evaluate a generator: SWD, MS-SSIM, mode coverage and FID/KID/precision-recall.

Used by :meth:`jaxgan.SavedRun.evaluate` (``experiments/evaluate.py``) and by the loop's
``eval_every``; it takes the dataset's name, never a training config. Features for FID/KID/PR come
from the offline digit classifier (grayscale digit datasets) or from an InceptionV3 whose weights
file the user supplies (``--inception_weights``); these machines cannot download them.

:func:`check_metrics` refuses, in one line, a metric that is unknown or does not apply to a
dataset (SWD on the toys' 2-D points, say); ``SavedRun.evaluate`` runs it first, while
:func:`evaluate_images` itself skips a metric that does not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.metrics import IN_TRAINING, METRICS

DIGIT_DATASETS = ("mnist5k", "digits", "tfds:mnist", "tfds:fashion_mnist")


def _data_kind(dataset: str) -> tuple[str, tuple[str, ...]]:
    """How ``dataset``'s samples are described in a message, and the metrics that apply to them."""
    from jaxgan.data.toys import TOY_NAMES, get_toy

    if dataset in TOY_NAMES:
        if len(get_toy(dataset).centers):
            return "2-D points", ("modes",)
        return "2-D points without modes", ()
    if dataset in DIGIT_DATASETS or dataset == "stacked_mnist":
        return "digit images", METRICS
    return "images", tuple(m for m in METRICS if m != "modes")


def applicable_metrics(dataset: str) -> tuple[str, ...]:
    """The metrics that apply to ``dataset``'s samples, in :data:`METRICS` order.

    The toys (2-D points): ``modes`` (none for ``swissroll``, which has no modes). Images: SWD,
    MS-SSIM, FID/KID/PR (their features: the digit classifier for grayscale digits, else an
    InceptionV3 weights file); ``modes`` for the digit datasets only.
    """
    return _data_kind(dataset)[1]


def default_metrics(dataset: str, resolution: int | None) -> tuple[str, ...]:
    """What an evaluation computes when no metric is named: those of the in-training ones (swd,
    ms_ssim, modes) that apply to ``dataset`` and compute at ``resolution`` (MS-SSIM from 16x16,
    the digit classifier's modes at 28x28 and 32x32)."""
    ok = {
        "ms_ssim": resolution is not None and resolution >= 16,
        "modes": resolution is None or resolution in (28, 32),
    }
    return tuple(m for m in applicable_metrics(dataset) if m in IN_TRAINING and ok.get(m, True))


def check_metrics(
    metrics: Sequence[str] | str, dataset: str, *, inception_weights: str | None = None
) -> tuple[str, ...]:
    """``metrics`` (a string is a comma-separated list, as the ``--metrics`` flag), each once and
    known, all applying to ``dataset``; else :class:`ConfigError` with one line that names the
    metric and the ones that apply."""
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    try:
        names = [m.strip() if isinstance(m, str) else m for m in metrics]
    except TypeError:
        raise ConfigError(
            f"--metrics must be a list of metric names, not {type(metrics).__name__}."
        ) from None
    names = list(dict.fromkeys(m for m in names if m != ""))
    if not names:
        raise ConfigError(f"--metrics names no metric; choose from {', '.join(METRICS)}.")
    if bad := [m for m in names if m not in METRICS]:
        raise ConfigError(
            f"--metrics: unknown metric {bad[0]!r}; choose from {', '.join(METRICS)}."
        )
    kind, ok = _data_kind(dataset)
    if bad := [m for m in names if m not in ok]:
        verb = "does" if len(bad) == 1 else "do"
        which = f"the ones that apply: {', '.join(ok)}" if ok else "no metric applies to them"
        raise ConfigError(
            f"--metrics={','.join(bad)} {verb} not apply to {dataset} ({kind}); {which}."
        )
    if (
        any(m in names for m in ("fid", "kid", "pr"))
        and dataset not in DIGIT_DATASETS
        and not inception_weights
    ):
        raise ConfigError(_NEED_FEATURES)
    return tuple(names)


_NEED_FEATURES = (
    "--metrics fid/kid/pr need features: this dataset is not grayscale digits, so pass "
    "--inception_weights PATH (see jaxgan/metrics/inception.py for the file)."
)


def generate_images(
    sample_fn: Callable[[jax.Array], np.ndarray],
    latent_dim: int,
    num: int,
    seed: int = 0,
    batch: int = 256,
) -> np.ndarray:
    """``num`` samples from ``sample_fn(z)``, z ~ N(0, 1) of shape (b, latent_dim), in batches."""
    key = jax.random.key(seed)
    out = []
    for i in range(0, num, batch):
        z = jax.random.normal(jax.random.fold_in(key, i), (min(batch, num - i), latent_dim))
        out.append(np.asarray(sample_fn(z)))
    return np.concatenate(out)[:num]


def real_images(
    dataset: str, num: int, resolution: int | None, seed: int = 0, data_dir: str | None = None
) -> np.ndarray:
    """``num`` real samples of ``dataset`` at ``resolution`` (host numpy, [-1, 1])."""
    from jaxgan import data, parallel

    batch = 256 if num >= 256 else num
    mesh = parallel.make_mesh(jax.local_devices()[:1])
    pipe = data.load(
        dataset, batch_size=batch, resolution=resolution, seed=seed + 12345,
        mesh=mesh, data_dir=data_dir,
    )  # fmt: skip
    try:
        out = []
        while sum(len(x) for x in out) < num:
            out.append(np.asarray(jax.device_get(next(pipe)["x"])))
        return np.concatenate(out)[:num]
    finally:
        pipe.close()


def evaluate_images(
    fake: np.ndarray,
    dataset: str,
    *,
    metrics: Sequence[str] = ("swd",),
    data_dir: str | None = None,
    resolution: int | None = None,
    seed: int = 0,
    inception_weights: str | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The requested metrics of generated samples ``fake`` against ``dataset``'s real data.

    ``fake``: (N, H, W, C) in [-1, 1] (or (N, 2) points for the toys). Returns a flat dict of floats
    (and per-level SWD lists). An unknown metric is a :class:`ConfigError`; one that does not apply
    to ``dataset`` (see :func:`check_metrics`, which refuses it) or, MS-SSIM, to samples under
    16x16, adds nothing.
    """
    if bad := [m for m in metrics if m not in METRICS]:
        raise ConfigError(
            f"--metrics: unknown metric {bad[0]!r}; choose from {', '.join(METRICS)}."
        )
    out: dict[str, Any] = {"num_images": int(len(fake))}
    from jaxgan.data.toys import TOY_NAMES

    if dataset in TOY_NAMES:
        if "modes" in metrics:
            from jaxgan.data.toys import get_toy
            from jaxgan.metrics.modes import toy_mode_metrics

            toy = get_toy(dataset)
            if len(toy.centers):
                ours = toy_mode_metrics(fake, toy.centers, toy.std)
                # The same count on as many real points: a perfect generator's figures
                # (about 98.9 % high quality: the share of a 2-D Gaussian within 3 std).
                real = toy.sample(np.random.default_rng(seed), len(fake))
                ref = toy_mode_metrics(real, toy.centers, toy.std)
                out.update({f"modes/{k}": v for k, v in ours.items()})
                out.update(
                    {f"modes/{k}_real": ref[k] for k in ("high_quality_fraction", "reverse_kl")}
                )
        return out
    need_real = any(m in metrics for m in ("swd", "fid", "kid", "pr"))
    real = real_images(dataset, len(fake), resolution, seed, data_dir) if need_real else None
    if "swd" in metrics:
        from jaxgan.metrics.swd import sliced_wasserstein, swd_noise_floor

        swd = sliced_wasserstein(fake, real, seed)
        out["swd/mean"] = float(swd["mean"])
        out["swd/levels"] = [float(v) for v in swd["levels"]]
        if len(real) >= 4:
            floor = swd_noise_floor(
                np.concatenate(
                    [real, real_images(dataset, len(real), resolution, seed + 1, data_dir)]
                ),
                seed,
            )
            out["swd/noise_floor"] = float(floor["mean"])
    if "ms_ssim" in metrics:
        from jaxgan.metrics.ms_ssim import ms_ssim_diversity

        if fake.shape[1] >= 16:
            out["ms_ssim"] = float(
                ms_ssim_diversity(fake, num_pairs=min(2000, 4 * len(fake)), seed=seed)
            )
    digits = dataset in DIGIT_DATASETS or dataset == "stacked_mnist"
    classifier = None
    if digits and any(m in metrics for m in ("modes", "fid", "kid", "pr")):
        from jaxgan.metrics.classifier import load_digit_classifier

        classifier = load_digit_classifier(cache_dir)
    if "modes" in metrics and classifier is not None:
        from jaxgan.metrics import modes

        if dataset == "stacked_mnist":
            m = modes.stacked_mnist_mode_metrics(fake, classifier)
        else:
            m = modes.digit_mode_metrics(fake, classifier)
            # Nameable digits, and the same share on as many real digits for reference.
            m["confident_share"] = modes.confident_share(classifier.logits(fake))
            if real is None:
                real = real_images(dataset, len(fake), resolution, seed, data_dir)
            m["confident_share_real"] = modes.confident_share(classifier.logits(real))
        out.update(
            {f"modes/{k}": v for k, v in m.items() if isinstance(v, (int, float, np.number))}
        )
    if any(m in metrics for m in ("fid", "kid", "pr")):
        from jaxgan.metrics import fid as fid_lib

        if classifier is not None and fake.shape[-1] == 1:
            features, name = classifier.features, "digit_classifier"
        elif inception_weights:
            from jaxgan.metrics.inception import InceptionFeatureExtractor

            features, name = InceptionFeatureExtractor(inception_weights).features, "inception_v3"
        else:
            raise ConfigError(_NEED_FEATURES)
        ff, fr = np.asarray(features(fake)), np.asarray(features(real))
        out["features"] = name
        # The real-vs-real reference: a second real set of the same size against the first.
        fr2 = None
        if "fid" in metrics or "kid" in metrics:
            real2 = real_images(dataset, len(real), resolution, seed + 1, data_dir)
            fr2 = np.asarray(features(real2))
        if "fid" in metrics:
            out["fid"] = float(fid_lib.fid(ff, fr))
            out["fid/real_vs_real"] = float(fid_lib.fid(fr2, fr))
        if "kid" in metrics:
            for tag, feats in (("", ff), ("/real_vs_real", fr2)):
                k = fid_lib.kid(feats, fr)
                items = k.items() if isinstance(k, dict) else [("mean", k)]
                out.update({f"kid/{a}{tag}": float(b) for a, b in items})
        if "pr" in metrics:
            p = fid_lib.precision_recall(fr, ff)
            out.update({f"pr/{a}": float(b) for a, b in p.items()})
    return out


def evaluate_generator(
    sample_fn: Callable[[jax.Array], np.ndarray],
    dataset: str,
    latent_dim: int,
    *,
    metrics: Sequence[str],
    num_images: int,
    resolution: int | None = None,
    seed: int = 0,
    **kw: Any,
) -> dict[str, Any]:
    """Generate ``num_images`` with ``sample_fn`` and evaluate them (see :func:`evaluate_images`)."""
    fake = generate_images(sample_fn, latent_dim, num_images, seed)
    return evaluate_images(fake, dataset, metrics=metrics, resolution=resolution, seed=seed, **kw)
