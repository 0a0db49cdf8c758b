"""Everything the trainers consume: ``jaxgan.data.load(spec, batch_size=..., ...)``.

Dataset strings (the CLI's ``--dataset``): ``tfds:NAME[/CONFIG][:SPLIT]``, ``folder:PATH``,
``digits``, ``mnist5k``, ``stacked_mnist``, and the 2-D toys (``TOY_NAMES``, see
:mod:`jaxgan.data.toys`).

Batches are dicts ``{"x": jax.Array}`` (+ ``"label"``): images float32 NHWC in [-1, 1], toys
float32 (B, 2), sharded over the mesh along the batch axis (axis 1 with ``stack=k``).
"""

from jaxgan.data import toys
from jaxgan.data.images import box_downsample
from jaxgan.data.pipeline import SPEC_FORMS, STACKED_MNIST_SIZE, DataPipeline, build_source, load
from jaxgan.data.tfds_source import DatasetNotPreparedError, default_data_dir
from jaxgan.data.toys import TOY_NAMES, ToyDistribution, get_toy

__all__ = [
    "SPEC_FORMS",
    "STACKED_MNIST_SIZE",
    "TOY_NAMES",
    "DataPipeline",
    "DatasetNotPreparedError",
    "ToyDistribution",
    "box_downsample",
    "build_source",
    "default_data_dir",
    "get_toy",
    "load",
    "toys",
]
