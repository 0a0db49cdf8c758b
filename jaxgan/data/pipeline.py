"""The data pipeline: one dataset string in, sharded global batches out.

``load(spec, batch_size=..., ...)`` returns a ``DataPipeline``, an iterator of dicts
``{"x": jax.Array}`` (plus ``"label"`` with ``labels=True``):

- images: float32 NHWC in [-1, 1] at the current resolution, made from the cached
  native-resolution uint8 images by area (box) downsampling;
- toys: float32 (B, 2) points.

With ``stack=k`` every batch has a leading axis of k independent batches, (k, B, ...), sharded
along axis 1. ``batch_size`` is always the global batch B.

Order and determinism. Image records are visited in the order of a grain
``MapDataset.range(N).shuffle(seed).repeat()``: a fresh permutation every epoch, and a pure
function of (seed, stream position). A batch is the next ``k * B`` positions of that stream, so
the pipeline's whole state is the stream position plus the current resolution and batch size;
``get_state``/``set_state`` save and restore exactly that, and ``configure`` can change
resolution and batch size between any two batches without re-reading anything. Mirror flips
are a hash of (seed, position). Toy batch i is drawn from ``np.random.default_rng([seed, i])``.

Prefetch: ``prefetch`` batches are built ahead in background threads (gather, downsample,
flip, scale and the host-to-device copy); decoding of lazily read sources runs in a further
pool of threads inside the source.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import Mesh

from jaxgan import parallel
from jaxgan.arrays import is_power_of_two
from jaxgan.data import images as im
from jaxgan.data import offline
from jaxgan.data.sources import ArraySource, ImageSource, StackedSource
from jaxgan.data.toys import TOY_NAMES, ToyDistribution, get_toy

#: The dataset forms ``load`` accepts, as shown in error messages.
SPEC_FORMS: tuple[str, ...] = (
    "tfds:NAME[/CONFIG][:SPLIT]",
    "folder:PATH",
    "digits",
    "mnist5k",
    "stacked_mnist",
    *TOY_NAMES,
)

#: Size of jaxgan's Stacked MNIST training set (a fixed index table, seed 0, over mnist5k).
STACKED_MNIST_SIZE = 100_000

_STATE_VERSION = 1


def _spec_error(spec: str) -> ValueError:
    return ValueError(f"unknown dataset={spec!r}; allowed forms: {', '.join(SPEC_FORMS)}.")


def build_source(
    spec: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    grayscale: bool = False,
    labels: bool = False,
) -> ImageSource | ToyDistribution:
    """The image source or toy distribution that ``spec`` names (see ``SPEC_FORMS``)."""
    if not isinstance(spec, str) or not spec:
        raise _spec_error(str(spec))
    if spec in TOY_NAMES:
        return get_toy(spec)
    if spec.startswith("tfds:"):
        from jaxgan.data.tfds_source import tfds_source

        return tfds_source(
            spec[len("tfds:") :],
            data_dir=data_dir,
            download=download,
            grayscale=grayscale,
            labels=labels,
        )
    if spec.startswith("folder:"):
        from jaxgan.data.folder import folder_source

        if labels:
            raise ValueError(f"dataset={spec}: labels=True, but a folder source has no labels.")
        path = spec[len("folder:") :]
        if not path:
            raise ValueError("dataset=folder:PATH needs a path, e.g. folder:~/images.")
        return folder_source(path, grayscale=grayscale)
    if spec == "digits":
        x, y = offline.digits()
        return ArraySource("digits", x[..., None], y, max_value=16.0)
    if spec == "mnist5k":
        x, y = offline.mnist5k()
        return ArraySource("mnist5k", im.pad_to(x[..., None], 32), y)
    if spec == "stacked_mnist":
        if grayscale:
            raise ValueError("dataset=stacked_mnist: grayscale=True would merge its 3 digits.")
        x, y = offline.mnist5k()
        table = offline.stacked_mnist_indices(STACKED_MNIST_SIZE, seed=0)
        return StackedSource("stacked_mnist", im.pad_to(x[..., None], 32), y, table)
    raise _spec_error(spec)


class DataPipeline:
    """An endless, deterministic, resumable iterator of sharded global batches.

    Attributes: ``spec``; ``kind`` (``"image"`` or ``"points"``); ``native_resolution`` (int,
    None for toys); ``resolution`` (current; None for toys); ``channels`` (2 for toys: the point
    dimension); ``num_examples`` (None for toys, which are infinite); ``batch_size`` (global);
    ``stack`` (None or k); ``toy`` (the ``ToyDistribution`` or None); ``skipped`` (unreadable
    files left out of a folder); ``mesh``.
    """

    def __init__(
        self,
        spec: str,
        source: ImageSource | ToyDistribution,
        *,
        batch_size: int,
        resolution: int | None,
        seed: int,
        mesh: Mesh,
        mirror: bool,
        labels: bool,
        stack: int | None,
        prefetch: int,
    ):
        self.spec = spec
        self.mesh = mesh
        self.seed = int(seed)
        self.mirror = bool(mirror)
        self.labels = bool(labels)
        if stack is not None and (not isinstance(stack, int | np.integer) or stack < 1):
            raise ValueError(f"stack must be None or a positive integer, got {stack!r}.")
        self.stack = None if stack is None else int(stack)
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}.")
        self.prefetch = int(prefetch)
        if isinstance(source, ToyDistribution):
            if mirror:
                raise ValueError(f"dataset={spec}: mirror=True needs an image dataset.")
            if labels and source.num_modes == 0:
                raise ValueError(f"dataset={spec}: labels=True, but the swiss roll has no modes.")
            self.toy: ToyDistribution | None = source
            self._source: ImageSource | None = None
            self._order = None
        else:
            if labels and source.label_shape is None:
                raise ValueError(f"dataset={spec}: labels=True, but this source has no labels.")
            self.toy = None
            self._source = source
            # Per-epoch reshuffled record order: element p is the record at stream position p.
            self._order = (
                grain.MapDataset.range(source.num_examples).shuffle(seed=self.seed % 2**32).repeat()
            )
        self._batch_size = self._check_batch(batch_size)
        self._resolution = self._check_resolution(resolution)
        self._position = 0
        self._pending: collections.deque[tuple[int, cf.Future]] = collections.deque()
        self._pool = (
            cf.ThreadPoolExecutor(self.prefetch, "jaxgan-prefetch") if self.prefetch else None
        )
        self._closed = False

    # --- description ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"image"`` or ``"points"``."""
        return "points" if self.toy is not None else "image"

    @property
    def native_resolution(self) -> int | None:
        """The largest resolution the source serves (None for toys)."""
        return None if self._source is None else self._source.native_resolution

    @property
    def resolution(self) -> int | None:
        """The current image resolution (None for toys)."""
        return self._resolution

    @property
    def channels(self) -> int:
        """Image channels (1 or 3); 2 (the point dimension) for toys."""
        return 2 if self._source is None else self._source.channels

    @property
    def num_examples(self) -> int | None:
        """Records in one epoch; None for the (infinite) toys."""
        return None if self._source is None else self._source.num_examples

    @property
    def batch_size(self) -> int:
        """The current global batch size."""
        return self._batch_size

    @property
    def skipped(self) -> int:
        """Unreadable image files left out (folder sources), 0 otherwise."""
        return 0 if self._source is None else self._source.skipped

    def __repr__(self) -> str:
        return (
            f"DataPipeline({self.spec!r}, kind={self.kind}, batch_size={self._batch_size}, "
            f"resolution={self._resolution}, num_examples={self.num_examples}, stack={self.stack})"
        )

    # --- validation -------------------------------------------------------------------------

    def _check_batch(self, batch_size: int) -> int:
        if not isinstance(batch_size, int | np.integer):
            raise ValueError(f"batch_size must be an integer, got {batch_size!r}.")
        parallel.check_batch_divisible(int(batch_size), self.mesh, "batch_size")
        return int(batch_size)

    def _check_resolution(self, resolution: int | None) -> int | None:
        native = self.native_resolution
        if native is None:
            if resolution is not None:
                raise ValueError(
                    f"resolution={resolution}: dataset={self.spec} is 2-D points; leave it None."
                )
            return None
        if resolution is None:
            return native
        if not is_power_of_two(resolution):
            raise ValueError(f"resolution={resolution} is not a power of two.")
        if resolution > native:
            raise ValueError(
                f"resolution={resolution} is above the native resolution {native} of "
                f"dataset={self.spec}."
            )
        return int(resolution)

    # --- configuration and state ------------------------------------------------------------

    def configure(self, resolution: int | None = None, batch_size: int | None = None) -> None:
        """Switch resolution and/or global batch size from the next batch on (None: unchanged).

        Nothing is re-read or re-decoded; batches prefetched at the old settings are dropped.
        """
        res = self._resolution if resolution is None else self._check_resolution(resolution)
        bs = self._batch_size if batch_size is None else self._check_batch(batch_size)
        if (res, bs) != (self._resolution, self._batch_size):
            self._drop_pending()
            self._resolution, self._batch_size = res, bs

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state: restoring it makes the next batch the one that follows."""
        return {
            "version": _STATE_VERSION,
            "spec": self.spec,
            "seed": self.seed,
            "num_examples": self.num_examples,
            "position": self._position,
            "resolution": self._resolution,
            "batch_size": self._batch_size,
            "stack": self.stack,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume from ``get_state()`` of a pipeline built with the same spec and seed."""
        if int(state.get("version", -1)) != _STATE_VERSION:
            raise ValueError(f"data state of unknown version {state.get('version')!r}.")
        for key, mine in (
            ("spec", self.spec),
            ("seed", self.seed),
            ("num_examples", self.num_examples),
        ):
            if state.get(key) != mine:
                raise ValueError(
                    f"data state was saved with {key}={state.get(key)!r}, but this pipeline has "
                    f"{key}={mine!r}."
                )
        position = int(state["position"])
        if position < 0:
            raise ValueError(f"data state has a negative position {position}.")
        res = state.get("resolution")
        self.configure(
            resolution=None if res is None else int(res), batch_size=int(state["batch_size"])
        )
        self._drop_pending()
        self._position = position

    # --- iteration --------------------------------------------------------------------------

    def _step(self, batch_size: int) -> int:
        """How far one batch advances the stream: k * B records, or one toy batch index."""
        return 1 if self._source is None else (self.stack or 1) * batch_size

    def _local_offsets(self, batch_size: int) -> np.ndarray:
        """Offsets within a batch's k*B stream positions of this process's rows, (k, B/P)."""
        k = self.stack or 1
        nproc, pid = jax.process_count(), jax.process_index()
        local = batch_size // nproc
        rows = pid * local + np.arange(local)
        return np.arange(k)[:, None] * batch_size + rows[None, :]

    def _host_batch(self, position: int, resolution: int | None, batch_size: int) -> dict:
        """This process's rows of the batch at ``position`` as numpy arrays."""
        offsets = self._local_offsets(batch_size)
        k, local = offsets.shape
        lead = (k, local) if self.stack else (local,)
        if self._source is None:
            rng = np.random.default_rng([self.seed % 2**63, position])
            pts, modes = self.toy.sample_with_modes(rng, k * batch_size)
            out = {"x": pts[offsets.ravel()].reshape(*lead, 2)}
            if self.labels:
                out["label"] = modes[offsets.ravel()].reshape(lead)
            return out
        src = self._source
        positions = position + offsets.ravel()
        order = self._order
        records = np.fromiter((order[int(p)] for p in positions), np.int64, len(positions))
        images, labels = src.fetch(records % src.num_examples, self.labels)
        x = im.to_unit_range(im.box_downsample(images, resolution), src.max_value)
        if self.mirror:
            for i in np.flatnonzero(im.flip_bits(self.seed, positions)):
                x[i] = x[i, :, ::-1].copy()
        out = {"x": x.reshape(*lead, *x.shape[1:])}
        if self.labels:
            out["label"] = labels.astype(np.int32).reshape(*lead, *labels.shape[1:])
        return out

    def _make(self, position: int, resolution: int | None, batch_size: int) -> dict:
        host = self._host_batch(position, resolution, batch_size)
        return parallel.shard_batch(host, self.mesh, batch_axis=1 if self.stack else 0)

    def _fill(self) -> None:
        """Keep ``prefetch`` batches in flight in the thread pool."""
        step = self._step(self._batch_size)
        args = (self._resolution, self._batch_size)
        while len(self._pending) < self.prefetch:
            pos = self._pending[-1][0] + step if self._pending else self._position
            self._pending.append((pos, self._pool.submit(self._make, pos, *args)))

    def _drop_pending(self) -> None:
        while self._pending:
            self._pending.popleft()[1].cancel()

    def __iter__(self) -> DataPipeline:
        return self

    def __next__(self) -> dict[str, jax.Array]:
        if self._closed:
            raise RuntimeError("this DataPipeline is closed.")
        if self._pool is None:
            batch = self._make(self._position, self._resolution, self._batch_size)
        else:
            self._fill()
            pos, fut = self._pending.popleft()
            assert pos == self._position
            batch = fut.result()
        self._position += self._step(self._batch_size)
        if self._pool is not None:
            self._fill()
        return batch

    def close(self) -> None:
        """Stop the prefetch threads and release the source (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._drop_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._source is not None:
            self._source.close()

    def __enter__(self) -> DataPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(
    spec: str,
    *,
    batch_size: int,
    resolution: int | None = None,
    seed: int = 0,
    mesh: Mesh | None = None,
    data_dir: str | None = None,
    download: bool = False,
    mirror: bool = False,
    labels: bool = False,
    grayscale: bool = False,
    stack: int | None = None,
    prefetch: int = 2,
) -> DataPipeline:
    """Open the dataset ``spec`` (see ``SPEC_FORMS``) as a ``DataPipeline``.

    Args:
      spec: ``tfds:NAME[/CONFIG][:SPLIT]`` (split default ``train``), ``folder:PATH``,
        ``digits``, ``mnist5k``, ``stacked_mnist`` or a toy name (``jaxgan.data.toys``).
      batch_size: the global batch; must be divisible by the mesh's device count.
      resolution: power of two <= the source's native resolution; None: native. Toys: None.
      seed: fixes the record order, the per-epoch reshuffles, the flips and the toy samples.
      mesh: the device mesh (default ``jaxgan.parallel.make_mesh()``).
      data_dir: tfds data dir (default ``default_data_dir()``).
      download: prepare an unprepared tfds dataset (needs TensorFlow and internet).
      mirror: random horizontal flips. labels: add ``"label"`` (int32). grayscale: 1 channel.
      stack: k to get (k, B, ...) batches sharded along axis 1; None for (B, ...).
      prefetch: batches built ahead in background threads (0: build on demand).
    """
    if mesh is None:
        mesh = parallel.make_mesh()
    # Cheap argument checks before any (possibly slow) source construction.
    parallel.check_batch_divisible(int(batch_size), mesh, "batch_size")
    if resolution is not None and not is_power_of_two(resolution):
        raise ValueError(f"resolution={resolution} is not a power of two.")
    if spec in TOY_NAMES and resolution is not None:
        raise ValueError(f"resolution={resolution}: dataset={spec} is 2-D points; leave it None.")
    source = build_source(
        spec, data_dir=data_dir, download=download, grayscale=grayscale, labels=labels
    )
    try:
        return DataPipeline(
            spec,
            source,
            batch_size=batch_size,
            resolution=resolution,
            seed=seed,
            mesh=mesh,
            mirror=mirror,
            labels=labels,
            stack=stack,
            prefetch=prefetch,
        )
    except Exception:
        if isinstance(source, ImageSource):
            source.close()
        raise


__all__ = ["SPEC_FORMS", "STACKED_MNIST_SIZE", "DataPipeline", "build_source", "load"]
