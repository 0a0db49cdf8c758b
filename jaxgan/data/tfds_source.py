"""``tfds:NAME[/CONFIG][:SPLIT]``: tensorflow-datasets image data read without TensorFlow.

Reading goes through ``tfds.data_source`` (ArrayRecord random access); TensorFlow is never
imported. Preparing a data set (download + conversion) needs TensorFlow and internet, so it only
happens with an explicit ``download=True``; otherwise an unprepared data set is an immediate
``DatasetNotPreparedError`` naming the data dir and the command that prepares it.

Images: the first ``Image`` feature (``"image"`` when present). Square power-of-two images are
kept; MNIST-type 28x28 images are padded to 32x32 with the background; anything else (celeb_a's
218x178, lsun's variable sizes) is centre-cropped to a square and resized with an antialiasing
filter to the largest power of two <= the smaller side (celeb_a: 178x178 crop -> 128x128). For
variable-size data sets the smaller side is estimated from the first 32 records. Labels: the
``"label"`` feature, else the first ``ClassLabel`` feature.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from jaxgan.data import images as im
from jaxgan.data.sources import RecordSource, cache_budget_bytes

_PROBE_RECORDS = 32


class DatasetNotPreparedError(ValueError):
    """A tfds data set is not prepared (or cannot be prepared here) in the data dir."""


def default_data_dir() -> str:
    """The tfds data dir: ``$JAXGAN_DATA_DIR``, else ``~/tensorflow_datasets``."""
    return os.environ.get("JAXGAN_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def parse_tfds_spec(rest: str) -> tuple[str, str]:
    """``NAME[/CONFIG][:SPLIT]`` -> (``NAME[/CONFIG]``, split; default ``"train"``)."""
    name, _, split = rest.partition(":")
    if not name:
        raise ValueError("dataset=tfds:...: a dataset name is needed, e.g. tfds:mnist.")
    return name, split or "train"


def prepare_command(name: str, data_dir: str) -> str:
    """The shell commands that prepare ``name`` in ``data_dir`` (as shown in error messages)."""
    return (
        f"  python experiments/run.py --dataset=tfds:{name} --data_dir={data_dir} --download\n"
        "or, directly:\n"
        f'  pip install "jaxgan[prepare]" && python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}', data_dir='{data_dir}')"
        ".download_and_prepare(file_format='array_record')\""
    )


def tfds_is_mocked() -> bool:
    """True inside ``tfds.testing.mock_data`` (or any patch of ``DatasetBuilder.as_data_source``).

    The on-disk check is skipped then: mock_data serves random records without files.
    """
    from tensorflow_datasets.core import dataset_builder

    fn = dataset_builder.DatasetBuilder.as_data_source
    return getattr(fn, "__module__", None) != dataset_builder.__name__


def ensure_prepared(name: str, data_dir: str, download: bool) -> None:
    """Check that tfds ``name`` is prepared in ``data_dir`` in a random-access format.

    Only local files are read (no network). With ``download=True`` an unprepared data set is
    prepared (needs TensorFlow and internet; says so first).
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import file_adapters

    if tfds_is_mocked():
        return
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(
            f"dataset=tfds:{name}: {first} (not a tensorflow-datasets name, nor found in "
            f"{data_dir})."
        ) from None
    if builder.is_prepared():
        info = builder.info
        formats = {info.file_format, *getattr(info, "alternative_file_formats", ())}
        if not formats & file_adapters.FileFormat.with_random_access():
            raise DatasetNotPreparedError(
                f"dataset=tfds:{name} is prepared in {builder.data_dir} as "
                f"{info.file_format.value if info.file_format else 'tfrecord'}, which has no "
                "random access; jaxgan reads ArrayRecord. Prepare it again in another data dir:\n"
                + prepare_command(name, data_dir)
            )
        return
    if not download:
        raise DatasetNotPreparedError(
            f"dataset=tfds:{name} is not prepared in the data dir {data_dir} (nothing at "
            f"{builder.data_dir}). Preparing it downloads the data and needs TensorFlow and "
            "internet; run once:\n" + prepare_command(name, data_dir)
        )
    print(
        f"jaxgan: preparing tfds:{name} in {data_dir} (download + conversion to ArrayRecord; "
        "needs TensorFlow and internet) ...",
        flush=True,
    )
    if importlib.util.find_spec("tensorflow") is None:
        raise DatasetNotPreparedError(
            f"preparing tfds:{name} needs TensorFlow, which is not installed: "
            'pip install "jaxgan[prepare]"'
        )
    builder.download_and_prepare(file_format="array_record")


def _find_image_key(features: Any) -> str:
    import tensorflow_datasets as tfds

    items = dict(features.items())
    if isinstance(items.get("image"), tfds.features.Image):
        return "image"
    for key, feat in items.items():
        if isinstance(feat, tfds.features.Image):
            return key
    raise ValueError(f"this dataset has no Image feature (features: {', '.join(items)}).")


def _find_label_key(features: Any) -> str:
    import tensorflow_datasets as tfds

    items = dict(features.items())
    if "label" in items:
        return "label"
    for key, feat in items.items():
        if isinstance(feat, tfds.features.ClassLabel):
            return key
    raise ValueError(f"labels=True, but this dataset has no label (features: {', '.join(items)}).")


def tfds_source(
    spec_rest: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    grayscale: bool = False,
    labels: bool = False,
    cache_bytes: int | None = None,
    workers: int | None = None,
) -> RecordSource:
    """A lazily decoded (and, when it fits the cache budget, cached) source over a tfds split."""
    name, split = parse_tfds_spec(spec_rest)
    data_dir = os.path.expanduser(data_dir or default_data_dir())
    ensure_prepared(name, data_dir, download)

    import tensorflow_datasets as tfds

    ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    features = ds.dataset_info.features
    try:
        key = _find_image_key(features)
        label_key = _find_label_key(features) if labels else None
    except ValueError as e:
        raise ValueError(f"dataset=tfds:{name}: {e}") from None
    n = len(ds)
    if n == 0:
        raise ValueError(f"dataset=tfds:{name}:{split} is empty.")
    shape = features[key].shape
    channels = 1 if grayscale or shape[-1] == 1 else 3  # RGBA loses its alpha
    if shape[0] is None or shape[1] is None:
        probe = [ds[i][key] for i in range(min(n, _PROBE_RECORDS))]
        height = min(int(p.shape[0]) for p in probe)
        width = height
        mode_for_all = "crop_resize"
    else:
        height, width = int(shape[0]), int(shape[1])
        mode_for_all = None
    native, mode = im.native_size(height, width)
    mode = mode_for_all or mode

    def read(i: int) -> tuple[np.ndarray, object]:
        ex = ds[int(i)]
        img = np.asarray(ex[key])
        if img.ndim == 2:
            img = img[..., None]
        if img.shape[-1] == 4:  # drop alpha
            img = img[..., :3]
        if grayscale:
            img = im.to_grayscale(img)
        elif img.shape[-1] == 1 and channels == 3:
            img = np.repeat(img, 3, axis=-1)
        if mode == "pad":
            img = im.pad_to(img, native)
        elif mode == "crop_resize" or img.shape[:2] != (native, native):
            img = im.crop_resize(img, native)
        return img, (ex[label_key] if label_key else None)

    budget = cache_budget_bytes() if cache_bytes is None else cache_bytes
    return RecordSource(
        f"tfds:{name}:{split}",
        n,
        read,
        native_resolution=native,
        channels=channels,
        label_shape=() if label_key else None,
        cache=n * native * native * channels <= budget,
        workers=workers,
    )
