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

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxgan.errors import ConfigError
from jaxgan.metrics import FEATURE_METRICS, IN_TRAINING, METRICS

DIGIT_DATASETS = ("mnist5k", "digits", "tfds:mnist", "tfds:fashion_mnist")
#: The datasets the digit classifier reads: its features for FID/KID/PR, its labels for modes.
CLASSIFIER_DATASETS = (*DIGIT_DATASETS, "stacked_mnist")


def _data_kind(dataset: str) -> tuple[str, tuple[str, ...]]:
    """How ``dataset``'s samples are described in a message, and the metrics that apply to them."""
    from jaxgan.data.toys import TOY_NAMES, get_toy

    if dataset in TOY_NAMES:
        if len(get_toy(dataset).centers):
            return "2-D points", ("modes",)
        return "2-D points without modes", ()
    if dataset in CLASSIFIER_DATASETS:
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


def parse_metrics(metrics: Sequence[str] | str) -> list[str]:
    """``metrics`` (a string is a comma-separated list, as the ``--metrics`` flag) as names, each
    once and known; else :class:`ConfigError` with one line."""
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
    return names


def check_metrics(
    metrics: Sequence[str] | str, dataset: str, *, inception_weights: str | None = None
) -> tuple[str, ...]:
    """``metrics`` (a string is a comma-separated list, as the ``--metrics`` flag), each once and
    known, all applying to ``dataset``; else :class:`ConfigError` with one line that names the
    metric and the ones that apply."""
    names = parse_metrics(metrics)
    kind, ok = _data_kind(dataset)
    if bad := [m for m in names if m not in ok]:
        verb = "does" if len(bad) == 1 else "do"
        which = f"the ones that apply: {', '.join(ok)}" if ok else "no metric applies to them"
        raise ConfigError(
            f"--metrics={','.join(bad)} {verb} not apply to {dataset} ({kind}); {which}."
        )
    if (
        any(m in names for m in FEATURE_METRICS)
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
    need_real = any(m in metrics for m in ("swd", *FEATURE_METRICS))
    real = real_images(dataset, len(fake), resolution, seed, data_dir) if need_real else None
    if "swd" in metrics:
        from jaxgan.metrics.swd import swd_noise_floor

        out.update(_swd(fake, real, seed))
        if len(real) >= 4:
            floor = swd_noise_floor(
                np.concatenate(
                    [real, real_images(dataset, len(real), resolution, seed + 1, data_dir)]
                ),
                seed,
            )
            out["swd/noise_floor"] = float(floor["mean"])
    if "ms_ssim" in metrics and fake.shape[1] >= 16:
        out["ms_ssim"] = _ms_ssim(fake, seed)
    digits = dataset in CLASSIFIER_DATASETS
    classifier = None
    if digits and any(m in metrics for m in ("modes", *FEATURE_METRICS)):
        from jaxgan.metrics.classifier import load_digit_classifier

        classifier = load_digit_classifier(cache_dir)
    if "modes" in metrics and classifier is not None:
        from jaxgan.metrics import modes

        if dataset == "stacked_mnist":
            m = modes.stacked_mnist_mode_metrics(fake, classifier)
        else:
            m = _digit_modes(fake, classifier)
            # Nameable digits, and the same share on as many real digits for reference.
            if real is None:
                real = real_images(dataset, len(fake), resolution, seed, data_dir)
            m["confident_share_real"] = modes.confident_share(classifier.logits(real))
        out.update(
            {f"modes/{k}": v for k, v in m.items() if isinstance(v, (int, float, np.number))}
        )
    if any(m in metrics for m in FEATURE_METRICS):
        if classifier is not None and fake.shape[-1] == 1:
            features, name = classifier.features, "digit_classifier"
        elif inception_weights:
            features, name = _inception(inception_weights), "inception_v3"
        else:
            raise ConfigError(_NEED_FEATURES)
        ff, fr = np.asarray(features(fake)), np.asarray(features(real))
        out["features"] = name
        # The real-vs-real reference: a second real set of the same size against the first.
        fr2 = None
        if "fid" in metrics or "kid" in metrics:
            real2 = real_images(dataset, len(real), resolution, seed + 1, data_dir)
            fr2 = np.asarray(features(real2))
        extra = {} if fr2 is None else {"/real_vs_real": (fr2, fr)}
        out.update(_feature_metrics(metrics, ff, fr, extra))
    return out


def _swd(fake: np.ndarray, real: np.ndarray, seed: int) -> dict[str, Any]:
    """PGGAN's SWD of two equally large image sets: ``swd/mean`` and ``swd/levels``."""
    from jaxgan.metrics.swd import sliced_wasserstein

    swd = sliced_wasserstein(fake, real, seed)
    return {"swd/mean": float(swd["mean"]), "swd/levels": [float(v) for v in swd["levels"]]}


def _ms_ssim(images: np.ndarray, seed: int) -> float:
    """Mean MS-SSIM of ``min(2000, 4 N)`` random pairs of ``images`` (16 px or more)."""
    from jaxgan.metrics.ms_ssim import ms_ssim_diversity

    return float(ms_ssim_diversity(images, num_pairs=min(2000, 4 * len(images)), seed=seed))


def _digit_modes(images: np.ndarray, classifier: Any) -> dict[str, Any]:
    """The digit classifier's mode metrics of ``images`` and their share of nameable digits."""
    from jaxgan.metrics import modes

    m = modes.digit_mode_metrics(images, classifier)
    m["confident_share"] = modes.confident_share(classifier.logits(images))
    return m


def _inception(weights: str) -> Callable[[np.ndarray], np.ndarray]:
    from jaxgan.metrics.inception import InceptionFeatureExtractor

    return InceptionFeatureExtractor(weights).features


def _feature_metrics(
    metrics: Sequence[str],
    ff: np.ndarray,
    fr: np.ndarray,
    extra: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    pr_extra: bool = False,
) -> dict[str, float]:
    """FID, KID and precision/recall of fake features ``ff`` against real ones ``fr``, and, for
    each ``tag: (x, y)`` of ``extra``, the same of ``x`` against ``y`` (``fid{tag}``,
    ``kid/mean{tag}``, ...; PR's only with ``pr_extra``)."""
    from jaxgan.metrics import fid as fid_lib

    out: dict[str, float] = {}
    pairs = {"": (ff, fr), **extra}
    if "fid" in metrics:
        for tag, (x, y) in pairs.items():
            out[f"fid{tag}"] = float(fid_lib.fid(x, y))
    if "kid" in metrics:
        for tag, (x, y) in pairs.items():
            k = fid_lib.kid(x, y)
            items = k.items() if isinstance(k, dict) else [("mean", k)]
            out.update({f"kid/{a}{tag}": float(b) for a, b in items})
    if "pr" in metrics:
        for tag, (x, y) in pairs.items() if pr_extra else [("", (ff, fr))]:
            if tag and min(len(x), len(y)) <= 3:  # k-NN balls (k = 3) need 4 or more per set
                continue
            p = fid_lib.precision_recall(y, x)
            out.update({f"pr/{a}{tag}": float(b) for a, b in p.items()})
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


# --- Two image sets: ``experiments/evaluate.py --real folder:A --fake folder:B`` (or a run) ---

#: ``--features`` for two image sets: the FID InceptionV3 (a weights file) or the digit classifier.
FEATURES: tuple[str, ...] = ("inception", "digits")
#: The image sizes the digit classifier reads (28x28 is padded to 32x32).
DIGIT_SIZES: tuple[int, ...] = (28, 32)
#: PIL pixel modes without colour: a folder of only these is read as grey (one channel).
_GREY_MODES = frozenset(("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"))


@dataclasses.dataclass
class ImageSet:
    """One side of a two-set evaluation: uint8 (N, R, R, C) images, where they came from, how
    many image files were found and left out (unreadable, or a pixel mode not converted), and how
    many were centre-cropped and resized to R x R."""

    name: str
    images: np.ndarray
    found: int = 0
    skipped: int = 0
    resized: int = 0
    sizes: tuple[str, ...] = ()


@dataclasses.dataclass
class ImageFolder:
    """A ``folder:PATH`` whose file headers have been read (:func:`scan_folder`); :meth:`read`
    decodes it."""

    name: str
    files: list[str]
    good: list[tuple[str, tuple[int, int], str]]  # (path, (width, height), PIL mode)
    bad: list[tuple[str, Exception]]
    refused: list[tuple[str, str]]

    @property
    def side(self) -> int:
        """The smallest image side in the folder: its resolution."""
        return min(min(s) for _, s, _ in self.good)

    @property
    def grey(self) -> bool:
        """Whether every readable file is grey (then it is read with one channel)."""
        return all(mode in _GREY_MODES for _, _, mode in self.good)

    def read(self, size: int, grey: bool, *, flag: str = "--real") -> ImageSet:
        """Every readable file centre-cropped to a square and resized to ``size`` (antialiased,
        as the folder dataset: ``jaxgan.data.folder.read_image``), grey or RGB; files that fail
        to decode are left out too, and one warning (the folder dataset's) counts them all."""
        import concurrent.futures as cf

        from jaxgan.data import folder as folder_lib
        from jaxgan.data.sources import default_workers

        paths = [f for f, _, _ in self.good]
        with cf.ThreadPoolExecutor(default_workers(), "jaxgan-decode") as pool:
            decoded = list(
                pool.map(lambda f: folder_lib._try(folder_lib.read_image, f, size, grey), paths)
            )
        bad = self.bad + [(f, e) for f, (a, e) in zip(paths, decoded, strict=True) if a is None]
        folder_lib._warn_skipped(self.name, bad, self.refused, len(self.files))
        kept = [(a, s) for (a, _), (_, s, _) in zip(decoded, self.good, strict=True) if a is not None]  # fmt: skip
        if len(kept) < 2:
            raise ConfigError(
                f"{flag}={self.name}: {len(kept)} of its {len(self.files)} image files could be "
                "read; an evaluation needs at least 2."
            )
        sizes = sorted({f"{w}x{h}" for _, (w, h) in kept if (w, h) != (size, size)})
        return ImageSet(
            self.name,
            np.stack([a for a, _ in kept]),
            found=len(self.files),
            skipped=len(bad) + len(self.refused),
            resized=sum((w, h) != (size, size) for _, (w, h) in kept),
            sizes=tuple(sizes),
        )


def scan_folder(spec: str, *, flag: str = "--real") -> ImageFolder:
    """``folder:PATH``'s image files (searched recursively, as the folder dataset) and their
    headers; :class:`ConfigError` with one line when ``spec`` is not ``folder:PATH``, the path is
    not a directory, or no image file in it can be opened."""
    import concurrent.futures as cf

    from jaxgan.data import folder as folder_lib
    from jaxgan.data import images as im
    from jaxgan.data.sources import default_workers

    if not isinstance(spec, str) or not spec.startswith("folder:") or spec == "folder:":
        raise ConfigError(f"{flag} must be folder:PATH (a folder of images), got {spec!r}.")
    root = os.path.expanduser(spec[len("folder:") :])
    name = f"folder:{root}"
    if not os.path.isdir(root):
        raise ConfigError(f"{flag}={spec}: {root!r} is not a directory.")
    files = folder_lib.list_images(root)
    if not files:
        raise ConfigError(
            f"{flag}={spec}: no images found (searched recursively for "
            f"{', '.join(folder_lib.IMAGE_EXTENSIONS)} files)."
        )
    with cf.ThreadPoolExecutor(default_workers(), "jaxgan-scan") as pool:
        headers = list(pool.map(lambda f: folder_lib._try(folder_lib._header, f), files))
    bad = [(f, e) for f, (h, e) in zip(files, headers, strict=True) if h is None]
    read = [(f, *h) for f, (h, _) in zip(files, headers, strict=True) if h is not None]
    refused = [(f, mode) for f, _, mode in read if mode not in im.CONVERTED_MODES]
    good = [(f, s, mode) for f, s, mode in read if mode in im.CONVERTED_MODES]
    if not good:
        raise ConfigError(f"{flag}={spec}: none of its {len(files)} image files could be read.")
    return ImageFolder(name, files, good, bad, refused)


def run_image_set(sample_fn: Callable[[jax.Array], np.ndarray], latent_dim: int, num: int,
                  seed: int = 0, name: str = "run") -> ImageSet:  # fmt: skip
    """``num`` generated samples (as :func:`evaluate_generator` draws them) as uint8 images, as
    they would be saved to PNG."""
    from jaxgan.arrays import to_uint8

    return ImageSet(name, to_uint8(generate_images(sample_fn, latent_dim, num, seed)))


def match_sets(fake: ImageSet, real: ImageSet, *, grey: bool | None = None) -> None:
    """Make ``fake`` comparable with ``real``, in place: the fake images centre-cropped and resized
    to the real ones' size (antialiased, as the folder dataset) where they differ, and both sets
    in one colour model: grey (ITU-R 601-2 luminance) with ``grey``, RGB where either set is
    (grey repeated, as PIL converts it), else as they are."""
    from jaxgan.data import images as im

    size = real.images.shape[1]
    if fake.images.shape[1:3] != (size, size):
        was = f"{fake.images.shape[2]}x{fake.images.shape[1]}"
        fake.images = np.stack([im.crop_resize(x, size) for x in fake.images])
        fake.resized, fake.sizes = len(fake.images), (was,)
    if grey is None:
        grey = fake.images.shape[-1] == real.images.shape[-1] == 1
    for s in (fake, real):
        if grey:
            s.images = im.to_grayscale(s.images)
        elif s.images.shape[-1] == 1:
            s.images = np.repeat(s.images, 3, axis=-1)


def default_set_metrics(features: str | None, resolution: int) -> tuple[str, ...]:
    """What a two-set evaluation computes when no metric is named: SWD (from 7 px), MS-SSIM (from
    16 px), FID/KID/PR with ``features``, and the digit modes with the digit classifier's."""
    ok = {
        "swd": resolution >= 7,
        "ms_ssim": resolution >= 16,
        "modes": features == "digits",
        "fid": features is not None,
        "kid": features is not None,
        "pr": features is not None,
    }
    return tuple(m for m in METRICS if ok[m])


def check_set_metrics(
    metrics: Sequence[str] | str | None,
    *,
    features: str | None,
    resolution: int,
) -> tuple[str, ...]:
    """``metrics`` (None: :func:`default_set_metrics`) for two image sets of ``resolution`` px,
    checked: :class:`ConfigError` with one line for an unknown metric, one that
    needs features not given, or images it cannot read."""
    if features is not None and features not in FEATURES:
        raise ConfigError(f"--features must be one of {', '.join(FEATURES)}, got {features!r}.")
    if features == "digits" and resolution not in DIGIT_SIZES:
        raise ConfigError(
            f"--features=digits reads 28x28 or 32x32 grey digits; the real images are "
            f"{resolution}x{resolution} (pass --features=inception with --inception_weights)."
        )
    if metrics is None:
        return default_set_metrics(features, resolution)
    names = parse_metrics(metrics)
    if features is None and (bad := [m for m in names if m in FEATURE_METRICS]):
        raise ConfigError(
            f"--metrics={','.join(bad)} {'needs' if len(bad) == 1 else 'need'} features: pass --inception_weights PATH (the FID "
            "InceptionV3, see jaxgan/metrics/inception.py), or --features=digits for 28x28 or "
            "32x32 grey digits."
        )
    if "modes" in names and features != "digits":
        raise ConfigError(
            "--metrics=modes counts the digit classifier's classes: pass --features=digits "
            "(28x28 or 32x32 grey digits)."
        )
    for m, low in (("swd", 7), ("ms_ssim", 16)):
        if m in names and resolution < low:
            raise ConfigError(
                f"--metrics={m} needs images of {low}x{low} or more; the real images are "
                f"{resolution}x{resolution}."
            )
    return tuple(names)


def evaluate_image_sets(
    fake: np.ndarray,
    real: np.ndarray,
    *,
    metrics: Sequence[str],
    features: str | None = None,
    inception_weights: str | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The ``metrics`` of the image set ``fake`` against ``real``, and the real-vs-real reference.

    ``fake``, ``real``: (N, R, R, C) uint8 (or float in [-1, 1]) of one shape per image; sizes may
    differ. With the same code as a run's evaluation: SWD on ``min(N_fake, N_real)`` images of
    each (a random subset of the larger set), MS-SSIM of each set, FID/KID/PR on the features of
    every image (``features``: ``"inception"``, with ``inception_weights``, or ``"digits"``), the
    digit modes of each set.

    The reference, at ``num_images/half`` = ``min(N_real // 2, N_fake)`` images a side: the real
    set split at random into two disjoint halves A and B, ``*/real_vs_real`` is the metric of A
    against B (the noise floor) and ``*/fake_vs_half`` that of as many random fake images against
    B. Those two are the ones to compare: FID and SWD fall as the sets grow, so the full-set value
    sits below its own floor at half the size. ``ms_ssim/real`` and ``modes/*_real``: the real
    set's own values.
    """
    fake, real = _unit(fake), _unit(real)
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"the two sets differ in shape: {fake.shape[1:]} and {real.shape[1:]}.")
    rng = np.random.default_rng(seed)
    half = min(len(real) // 2, len(fake))
    perm = rng.permutation(len(real))
    a, b = np.sort(perm[:half]), np.sort(perm[half : 2 * half])
    f = np.sort(rng.permutation(len(fake))[:half])
    out: dict[str, Any] = {
        "num_images/fake": len(fake), "num_images/real": len(real), "num_images/half": half,
    }  # fmt: skip
    if "swd" in metrics:
        n = min(len(fake), len(real))
        pick = lambda x: x if len(x) == n else x[np.sort(rng.permutation(len(x))[:n])]  # noqa: E731
        out.update(_swd(pick(fake), pick(real), seed))
        if half >= 2:
            out["swd/real_vs_real"] = _swd(real[a], real[b], seed)["swd/mean"]
            out["swd/fake_vs_half"] = _swd(fake[f], real[b], seed)["swd/mean"]
    if "ms_ssim" in metrics:
        out["ms_ssim"] = _ms_ssim(fake, seed)
        out["ms_ssim/real"] = _ms_ssim(real, seed)
    classifier = None
    if features == "digits" and any(m in metrics for m in ("modes", *FEATURE_METRICS)):
        from jaxgan.metrics.classifier import load_digit_classifier

        classifier = load_digit_classifier(cache_dir)
    if "modes" in metrics:
        if classifier is None:
            raise ConfigError("--metrics=modes needs --features=digits.")
        ours, ref = _digit_modes(fake, classifier), _digit_modes(real, classifier)
        out.update({f"modes/{k}": v for k, v in ours.items() if k != "num_samples"})
        for k in ("modes_captured", "reverse_kl", "confident_share"):
            out[f"modes/{k}_real"] = ref[k]
    if any(m in metrics for m in FEATURE_METRICS):
        if features == "digits":
            extract, out["features"] = classifier.features, "digit_classifier"
        elif features == "inception" and inception_weights:
            extract, out["features"] = _inception(inception_weights), "inception_v3"
        else:
            raise ConfigError(
                "--metrics fid/kid/pr need --inception_weights PATH or --features=digits."
            )
        ff, fr = np.asarray(extract(fake)), np.asarray(extract(real))
        extra = {}
        if half >= 2:
            extra = {"/real_vs_real": (fr[a], fr[b]), "/fake_vs_half": (ff[f], fr[b])}
        out.update(_feature_metrics(metrics, ff, fr, extra, pr_extra=True))
    return out


def _unit(images: np.ndarray) -> np.ndarray:
    """uint8 images as float32 in [-1, 1] (x / 127.5 - 1); floats as they are."""
    x = np.asarray(images)
    return x.astype(np.float32) / np.float32(127.5) - np.float32(1.0) if x.dtype == np.uint8 else x
