"""Toy 2-D distributions for mode-collapse experiments, in two protocols that must not be mixed.

WGAN-GP toy protocol (Gulrajani et al. 2017, the authors' toy script):

- ``ring8``: 8 Gaussians at radius 2, angles k*pi/4 (k = 0..7), std 0.02; all coordinates / 1.414.
- ``grid25``: 25 Gaussians at (2i, 2j), i, j in {-2..2}, std 0.05; all coordinates / 2.828.
- ``swissroll``: scikit-learn's ``make_swiss_roll(noise=0.25)``, columns [0, 2], / 7.5.

VEEGAN / PacGAN protocol (Srivastava et al. 2017; Lin et al. 2018):

- ``ring8-veegan``: 8 Gaussians at radius 1, std 0.01, angles ``linspace(0, 2pi, 8, endpoint=False)``.
- ``grid25-veegan``: 25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05.

Every distribution samples from an explicit ``np.random.Generator``; nothing here holds state.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# WGAN-GP's toy script divides every coordinate by these constants (its own rounded sqrt(2) and
# 2*sqrt(2)); the exact literals matter for reproducing its numbers.
_RING8_SCALE = 1.414
_GRID25_SCALE = 2.828
_SWISSROLL_SCALE = 7.5
_SWISSROLL_NOISE = 0.25


@dataclasses.dataclass(frozen=True)
class ToyDistribution:
    """A 2-D toy distribution.

    Attributes:
      name: one of ``TOY_NAMES``.
      protocol: ``"wgan-gp"`` or ``"veegan"``.
      centers: float64 (K, 2) mode centres, in the same (scaled) coordinates as the samples;
        shape (0, 2) for the swiss roll, which has no discrete modes.
      std: the per-coordinate standard deviation of each mode (for the swiss roll: of the noise
        added to the roll), in sample coordinates.
    """

    name: str
    protocol: str
    centers: np.ndarray
    std: float

    @property
    def num_modes(self) -> int:
        """K, the number of modes (0 for the swiss roll)."""
        return int(len(self.centers))

    def sample_with_modes(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points float32 (n, 2) and the index of the mode each was drawn from, int32 (n,).

        Modes are drawn uniformly. The swiss roll has no modes: its indices are all -1.
        """
        if n < 0:
            raise ValueError(f"sample: n must be non-negative, got {n}.")
        if self.num_modes == 0:
            return _swiss_roll(rng, n), np.full((n,), -1, np.int32)
        modes = rng.integers(0, self.num_modes, size=n)
        pts = self.centers[modes] + self.std * rng.standard_normal((n, 2))
        return pts.astype(np.float32), modes.astype(np.int32)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` i.i.d. points, float32 (n, 2)."""
        return self.sample_with_modes(rng, n)[0]


def _swiss_roll(rng: np.random.Generator, n: int) -> np.ndarray:
    """The make_swiss_roll formula, columns [0, 2] (x = t cos t, z = t sin t), noisy and scaled.

    t ~ U[1.5pi, 4.5pi); Gaussian noise of std 0.25 on each coordinate; everything / 7.5.
    Returns float32 (n, 2).
    """
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    pts = pts + _SWISSROLL_NOISE * rng.standard_normal((n, 2))
    return (pts / _SWISSROLL_SCALE).astype(np.float32)


def _ring(radius: float, k: int = 8) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, k, endpoint=False)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _grid(values: np.ndarray) -> np.ndarray:
    xx, yy = np.meshgrid(values, values, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)


_GRID = 2.0 * np.arange(-2, 3, dtype=np.float64)

# name: (protocol, mode centres, std), all in sample coordinates.
_TOYS: dict[str, tuple[str, np.ndarray, float]] = {
    "ring8": ("wgan-gp", _ring(2.0) / _RING8_SCALE, 0.02 / _RING8_SCALE),
    "grid25": ("wgan-gp", _grid(_GRID) / _GRID25_SCALE, 0.05 / _GRID25_SCALE),
    "swissroll": ("wgan-gp", np.zeros((0, 2)), _SWISSROLL_NOISE / _SWISSROLL_SCALE),
    "ring8-veegan": ("veegan", _ring(1.0), 0.01),
    "grid25-veegan": ("veegan", _grid(_GRID), 0.05),
}

#: The toy names ``jaxgan.data.load`` accepts.
TOY_NAMES: tuple[str, ...] = tuple(_TOYS)


def get_toy(name: str) -> ToyDistribution:
    """The toy distribution called ``name`` (see ``TOY_NAMES``)."""
    if name not in _TOYS:
        raise ValueError(
            f"unknown toy distribution {name!r}; choose one of {', '.join(TOY_NAMES)}."
        )
    protocol, centers, std = _TOYS[name]
    return ToyDistribution(name, protocol, centers.copy(), std)
