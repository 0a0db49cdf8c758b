"""Evaluation metrics: SWD, MS-SSIM, mode coverage, FID/KID/precision-recall.

Importing ``jaxgan.metrics`` is cheap: the submodules (which import jax, flax, numpy, scipy) load on
first use of a name below. None of them needs the trainers, tensorflow_datasets, grain or orbax.
``jaxgan.metrics.ms_ssim`` and ``jaxgan.metrics.fid`` are the submodules; their functions of the
same name are imported from them (``from jaxgan.metrics.fid import fid``), never re-exported here,
so the attribute cannot silently switch between a module and a function.

- :mod:`jaxgan.metrics.swd`: ``sliced_wasserstein``, ``swd_noise_floor``, ``swd_descriptors``,
  ``swd_from_descriptors`` (PGGAN's SWD).
- :mod:`jaxgan.metrics.ms_ssim`: ``ms_ssim``, ``ms_ssim_diversity``.
- :mod:`jaxgan.metrics.modes`: ``toy_mode_metrics``, ``digit_mode_metrics``,
  ``stacked_mnist_mode_metrics``.
- :mod:`jaxgan.metrics.classifier`: ``load_digit_classifier``, ``DigitClassifier``.
- :mod:`jaxgan.metrics.fid`: ``fid``, ``frechet_distance``, ``kid``, ``precision_recall``,
  ``FeatureExtractor``, ``extract_features``.
- :mod:`jaxgan.metrics.inception`: ``InceptionFeatureExtractor``, ``load_inception``,
  ``inception_weight_shapes``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The metric names an evaluation can compute (``--metrics``, ``--eval_metrics``).
METRICS: tuple[str, ...] = ("swd", "ms_ssim", "modes", "fid", "kid", "pr")
#: The ones a run computes while training (``--eval_metrics``): no feature network to load.
IN_TRAINING: tuple[str, ...] = METRICS[:3]
#: The ones computed on a feature network's embeddings (the digit classifier's or InceptionV3's).
FEATURE_METRICS: tuple[str, ...] = METRICS[3:]

_EXPORTS = {
    "sliced_wasserstein": "swd",
    "swd_noise_floor": "swd",
    "swd_descriptors": "swd",
    "swd_from_descriptors": "swd",
    "ms_ssim_diversity": "ms_ssim",
    "toy_mode_metrics": "modes",
    "digit_mode_metrics": "modes",
    "stacked_mnist_mode_metrics": "modes",
    "kl_to_uniform": "modes",
    "load_digit_classifier": "classifier",
    "DigitClassifier": "classifier",
    "frechet_distance": "fid",
    "feature_statistics": "fid",
    "kid": "fid",
    "precision_recall": "fid",
    "FeatureExtractor": "fid",
    "extract_features": "fid",
    "InceptionFeatureExtractor": "inception",
    "load_inception": "inception",
    "inception_weight_shapes": "inception",
}
_SUBMODULES = {"swd", "ms_ssim", "modes", "classifier", "fid", "inception"}

__all__ = ["FEATURE_METRICS", "IN_TRAINING", "METRICS", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBMODULES])
