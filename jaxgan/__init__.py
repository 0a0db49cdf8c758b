"""jaxgan: GANs the way the literature grew them, in JAX and Flax NNX.

Importing this package is cheap on purpose: submodules are imported on use, so
``import jaxgan.losses`` pulls in only jax, optax and chex.
"""

__version__ = "0.1.0"
