"""jaxgan's benchmark cases against PyTorch: ``python benchmarks/run.py --peers``.

- :mod:`peers.torch_models`: the PyTorch references of the cases, layer for layer, their train
  steps, and :func:`~peers.torch_models.copy_from_jaxgan` (jaxgan's weights into them).
- :mod:`peers.external`: Flax NNX mirrors of the two external references' networks (their jaxgan
  side).
- :mod:`peers.runner`: the ``--peers`` harness (alternating timed rounds, table, JSON).
- ``tests/``: parity of the references with jaxgan (parameter counts, settings, forward passes and
  train steps from the same weights) and a smoke run of the harness:
  ``python -m pytest -q benchmarks/peers/tests`` (needs ``pip install -r
  benchmarks/peers/requirements.txt``).

The package is imported as ``peers`` with ``benchmarks/`` on ``sys.path`` (``benchmarks/run.py``
and ``tests/conftest.py`` here put it there), beside its siblings ``cases`` and ``measure``.
Importing it imports nothing else: torch, JAX and jaxgan come with the submodules.
"""
