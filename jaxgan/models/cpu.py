"""``for_cpu(model, example)``: a model's convolutions in the form XLA:CPU runs fastest.

XLA:CPU runs some convolutions far below its matmul speed: lhs-dilated ones (a stride-2
transposed convolution's forward, a strided convolution's input gradient), the second derivative
a gradient penalty takes through a strided convolution, and small-map stride-1 convolutions with
wide kernels (caogang's 5x5 transposed convolutions on 4x4 maps). Each ``nnx.Conv`` /
``nnx.ConvTranspose`` can instead be computed, with the same parameters and the same function, as

* ``"im2col"`` (``Conv``, and ``ConvTranspose`` at stride 1): the kh·kw shifted (strided) views
  of the padded input side by side, times the kernel as one ``(kh·kw·C_in, C_out)`` matrix;
* ``"s2d"`` (``Conv`` at stride 2): one matmul over space-to-depth blocks
  (:func:`jaxgan.models.conv_forms.conv_stride2`);
* ``"col2im"`` (``ConvTranspose``): every input pixel times every kernel tap as one matmul, each
  tap's map then added at its place on the output (what PyTorch does; no multiplies by the
  zeros a transposed convolution's dilated, padded input holds);
* ``"phase"`` (``ConvTranspose`` at stride 2): one stride-1 convolution over the four output
  phases (:func:`jaxgan.models.conv_forms.conv_transpose_stride2`);
* ``"upsample"`` (``Conv`` at stride 1 right after a nearest-2x upsampling in an ``nnx.List`` or
  ``nnx.Sequential``): the pair as one four-phase convolution at the input's resolution
  (:func:`jaxgan.models.conv_forms.upsample_conv`; a 3x3 kernel: 4/9 of the multiply-adds); the
  list's upsampling entry becomes :func:`fused_upsample`, the identity;

or ``"native"`` (the layer's own call), or ``"native>R"``: the value computed natively and every
derivative through rewrite R (XLA:CPU's forward convolutions are fast where their gradients are
not). :func:`for_cpu` times each layer's candidates at its input shape, the value plus its
gradient (``order=2``: the gradient of its input gradient's norm instead, as a gradient penalty
takes it), then its two fastest forms and native in the whole model, and keeps the fastest when
it saves at least 10 % of the layer's own native time; the choice is cached per shape for the
process. It applies where the computation is lowered for CPU (``jax.lax.platform_dependent``):
a ``cuda``/``tpu`` lowering of the same model, an export included, holds the native layer. Layers
with other settings (dilation, groups, masks, circular padding, more than two spatial axes,
subclasses) stay as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.arrays import upsample2x
from jaxgan.models.conv_forms import (
    DN,
    conv_im2col,
    conv_stride2,
    conv_transpose_col2im,
    conv_transpose_stride2,
    transpose_pads,
    upsample_conv,
)

__all__ = ["FORMS", "cpu_forms", "for_cpu", "fused_upsample", "on_cpu_call"]

MIN_GAIN = 0.10  # a rewrite is kept only when it saves this share of the layer's native time
_CHOICES: dict[tuple, str] = {}  # (layer signature, input shape, dtype, order) -> form


def _spec(layer: nnx.Module) -> tuple[str, int, Any] | None:
    """(kind, stride, padding) of a layer this module can rewrite, or None."""
    kind = "conv" if isinstance(layer, nnx.Conv) else "transpose" if isinstance(layer, nnx.ConvTranspose) else None  # fmt: skip
    if kind is None or len(layer.kernel_size) != 2 or layer.mask is not None:
        return None
    if type(layer) not in (nnx.Conv, nnx.ConvTranspose) and not _rewritten(type(layer)):  # fmt: skip
        return None  # a subclass may compute something else
    ones = lambda v: v is None or v == 1 or tuple(np.atleast_1d(v)) == (1, 1)  # noqa: E731
    if not ones(layer.kernel_dilation) or getattr(layer, "transpose_kernel", False):
        return None
    if kind == "conv" and (layer.feature_group_count != 1 or not ones(layer.input_dilation)):
        return None
    strides = tuple(np.broadcast_to(np.asarray(layer.strides or 1), (2,)).tolist())
    padding = layer.padding
    if isinstance(padding, int):
        padding = ((padding, padding), (padding, padding))
    if isinstance(padding, str) and padding not in ("SAME", "VALID"):
        return None
    if not isinstance(padding, str):
        padding = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
        if len(padding) != 2:
            return None
    if strides not in ((1, 1), (2, 2)) or (layer.precision, layer.preferred_element_type) != (None, None):  # fmt: skip
        return None
    return kind, strides[0], padding


_REWRITES = {("conv", 1): ("im2col",), ("conv", 2): ("s2d", "im2col"),
             ("transpose", 1): ("col2im", "im2col"), ("transpose", 2): ("col2im", "phase")}  # fmt: skip
_ALL_REWRITES = tuple(dict.fromkeys(r for rs in _REWRITES.values() for r in rs))
#: Every form a layer can take: native, a rewrite, or native value with a rewrite's derivatives.
FORMS = ("native", *_ALL_REWRITES, *(f"native>{r}" for r in _ALL_REWRITES), "upsample")


def _candidates(spec: tuple[str, int, Any], after_upsample: bool = False) -> tuple[str, ...]:
    rewrites = _REWRITES[spec[:2]]
    return ("native", *rewrites, *(f"native>{r}" for r in rewrites), *(("upsample",) if after_upsample else ()))  # fmt: skip


def fused_upsample(x: jax.Array) -> jax.Array:
    """The identity: where a list held a nearest-2x upsampling that the next convolution now
    computes itself (form ``"upsample"``)."""
    return x


def _upsamples(f: Any) -> bool:
    """Whether ``f``, a parameter-free callable, is nearest-2x upsampling of NHWC arrays (tried on
    one small array)."""
    if f is fused_upsample:
        return True
    if isinstance(f, nnx.Module) or not callable(f):
        return False
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    try:
        with jax.ensure_compile_time_eval():  # concrete also inside a trace (nnx.eval_shape)
            y = np.asarray(f(jnp.asarray(x)))
    except Exception:  # noqa: BLE001 - anything that cannot take an NHWC array is no upsampling
        return False
    return y.shape == (1, 6, 4, 2) and np.array_equal(y, x.repeat(2, 1).repeat(2, 2))


def _pairs(model: nnx.Module, layers: Mapping[str, nnx.Module]) -> dict[str, tuple[nnx.List, int]]:
    """``{conv path: (list, index of the upsampling)}`` of each stride-1 ``nnx.Conv`` that follows
    a nearest-2x upsampling in an ``nnx.List`` (also an ``nnx.Sequential``'s)."""
    out = {}
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.List):
            continue
        for i in range(len(node) - 1):
            conv_path = ".".join(map(str, (*path, i + 1)))
            if conv_path in layers and _spec(layers[conv_path])[:2] == ("conv", 1) and _upsamples(node[i]):  # fmt: skip
                out[conv_path] = (node, i)
    return out


def _form(spec: tuple[str, int, Any], form: str) -> Callable[[jax.Array, jax.Array, Any], jax.Array]:  # fmt: skip
    """``(x, kernel, bias) -> y`` of ``form`` for a layer of ``spec`` (NHWC, 4-D ``x``); "native"
    is the ``lax`` convolution the Flax layer calls; "native>R" computes the value natively and
    every derivative through R's (a ``jax.custom_vjp`` whose backward pass is R's, itself
    differentiable again)."""
    kind, stride, padding = spec
    if ">" in form:
        value, grads = (_form(spec, f) for f in form.split(">"))

        @jax.custom_vjp
        def mixed(x: jax.Array, kernel: jax.Array, bias: Any) -> jax.Array:
            return value(x, kernel, bias)

        def forward(x, kernel, bias):
            return value(x, kernel, bias), (x, kernel, bias)

        def backward(res, ct):
            return jax.vjp(grads, *res)[1](ct)

        mixed.defvjp(forward, backward)
        return mixed

    def apply(x: jax.Array, kernel: jax.Array, bias: Any) -> jax.Array:
        if form == "upsample":  # x: the input before the upsampling
            return upsample_conv(x, kernel, bias, padding)
        if form == "s2d":
            return conv_stride2(x, kernel, bias, padding)
        if form == "phase":
            return conv_transpose_stride2(x, kernel, bias, padding)
        if form == "col2im":
            y = conv_transpose_col2im(x, kernel, transpose_pads(padding, kernel.shape[:2], stride), stride)  # fmt: skip
        elif form == "native":
            conv = jax.lax.conv_general_dilated if kind == "conv" else jax.lax.conv_transpose
            y = conv(x, kernel, (stride, stride), padding, dimension_numbers=DN)
        else:  # im2col: a stride-1 correlation with the padding the layer gives its input
            if kind == "transpose":  # at stride 1: a correlation over its padded input
                pads = transpose_pads(padding, kernel.shape[:2], 1)
            elif isinstance(padding, str):
                pads = jax.lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], (stride,) * 2, padding)  # fmt: skip
            else:
                pads = padding
            y = conv_im2col(x, kernel, pads, 1 if kind == "transpose" else stride)
        return y if bias is None else y + bias.reshape(1, 1, 1, -1).astype(y.dtype)

    return apply


def on_cpu_call(self: nnx.Conv | nnx.ConvTranspose, x: jax.Array) -> jax.Array:
    """The ``__call__`` of a rewritten ``nnx.Conv`` / ``nnx.ConvTranspose``: form ``self.cpu_form``
    where the layer is lowered for CPU (``jax.lax.platform_dependent``), the Flax layer's own call
    elsewhere; with ``self.cpu_everywhere`` the form on every platform (a test compares forms)."""
    flax_cls = nnx.Conv if isinstance(self, nnx.Conv) else nnx.ConvTranspose
    spec = _spec(self)
    if self.cpu_form == "upsample" and x.ndim != 4:  # the fused upsampling is only for NHWC
        raise ValueError(f"a convolution fused with its upsampling (form 'upsample') takes (B, H, W, C) input, got shape {x.shape}.")  # fmt: skip
    if self.cpu_form == "native" or spec is None or x.ndim != 4:
        return flax_cls.__call__(self, x)
    rewrite = _form(spec, self.cpu_form)

    def cpu(x: jax.Array, kernel: jax.Array, bias: Any) -> jax.Array:
        return rewrite(*self.promote_dtype((x, kernel, bias), dtype=self.dtype))

    def other(x: jax.Array, kernel: jax.Array, bias: Any) -> jax.Array:
        x = upsample2x(x) if self.cpu_form == "upsample" else x
        return flax_cls.__call__(self, x)  # the layer reads its own parameters

    bias = self.bias[...] if self.bias is not None else None
    if self.cpu_everywhere:
        return cpu(x, self.kernel[...], bias)
    return jax.lax.platform_dependent(x, self.kernel[...], bias, cpu=cpu, default=other)


def _rewritten(cls: type) -> bool:
    return cls.__call__ is on_cpu_call


_ON_CPU: dict[type, type] = {}  # Flax class -> its subclass that calls on_cpu_call


def _on_cpu_class(cls: type) -> type:
    if _rewritten(cls):
        return cls
    if cls not in _ON_CPU:
        body = {"__call__": on_cpu_call, "cpu_form": "native", "cpu_everywhere": False,
                "__module__": cls.__module__}  # fmt: skip
        _ON_CPU[cls] = type(cls.__name__, (cls,), body)
    return _ON_CPU[cls]


def _layers(model: nnx.Module) -> dict[str, nnx.Module]:
    """Rewritable convolution layers of ``model`` by their dotted path."""
    return {".".join(map(str, path)): node for path, node in nnx.iter_graph(model)
            if isinstance(node, (nnx.Conv, nnx.ConvTranspose)) and _spec(node) is not None}  # fmt: skip


def _input_shapes(layers: Mapping[str, nnx.Module], model: nnx.Module, example: tuple) -> dict[str, jax.ShapeDtypeStruct]:  # fmt: skip
    """Each layer's input shape and dtype in ``model(*example)`` (traced, nothing computed)."""
    seen: dict[str, jax.ShapeDtypeStruct] = {}
    classes = {path: type(layer) for path, layer in layers.items()}

    def recording(cls: type) -> type:
        def __call__(self, x):
            seen[self.cpu_path] = jax.ShapeDtypeStruct(x.shape, x.dtype)
            return cls.__call__(self, x)

        return type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__})

    try:
        for path, layer in layers.items():
            layer.__class__, layer.cpu_path = recording(classes[path]), path
        graphdef, state = nnx.split(model)
        jax.eval_shape(lambda state, *a: nnx.merge(graphdef, state)(*a), state, *example)
    finally:
        for path, layer in layers.items():
            layer.__class__ = classes[path]
            del layer.cpu_path
    return seen


def _time(fns: Mapping[str, Callable], args: tuple, rounds: int = 5) -> dict[str, float]:
    """Seconds per call of each ``fn(*args)``: the best of ``rounds`` interleaved rounds."""
    for fn in fns.values():
        jax.block_until_ready(fn(*args))  # compile, warm up
    best = dict.fromkeys(fns, np.inf)
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def _random(shape: Any, seed: int = 0) -> jax.Array:
    """A standard-normal array of ``shape``'s shape and dtype, on the CPU."""
    host = np.random.default_rng(seed).standard_normal(shape.shape).astype(shape.dtype)
    return jax.device_put(host, jax.devices("cpu")[0])


def _costs(fns: Mapping[Any, tuple[Callable, Callable]], args: tuple, r: jax.Array) -> dict[Any, float]:  # fmt: skip
    """Seconds per value (at ``args``) plus gradient (at ``args`` and the cotangent ``r``) of each
    candidate's ``(value, grad)`` pair."""
    t = _time({k: pair[0] for k, pair in fns.items()}, args)
    t_grad = _time({k: pair[1] for k, pair in fns.items()}, (*args, r))
    return {k: t[k] + t_grad[k] for k in fns}


def _grads(value: Callable, order: int, wrt: tuple[int, ...]) -> Callable:
    """``(*args, r) ->`` d<value(*args), r>/d(args ``wrt``) (order 1), or d|d<value, r>/d arg 1|^2
    /d(args ``wrt``) (order 2: what a gradient penalty differentiates). ``r`` is an argument, not a
    constant the compiler would fold."""

    def grads(*a: Any) -> Any:
        *a, r = a
        linear = lambda *a: jnp.vdot(value(*a), r)  # noqa: E731
        if order == 1:
            return jax.grad(linear, wrt)(*a)
        return jax.grad(lambda *a: jnp.sum(jax.grad(linear, 1)(*a) ** 2), wrt)(*a)

    return grads


def _rank_layer(layer: nnx.Module, spec: tuple, shape: jax.ShapeDtypeStruct, order: int,
                after_upsample: bool = False) -> dict[str, float]:  # fmt: skip
    """``{form: seconds}`` of the layer's forms at input ``shape``, fastest first, timed on the
    layer alone (``after_upsample``: with the upsampling before it, from the input at half the
    size)."""
    if after_upsample:
        shape = jax.ShapeDtypeStruct((shape.shape[0], shape.shape[1] // 2, shape.shape[2] // 2, shape.shape[3]), shape.dtype)  # fmt: skip
    x, cpu = _random(shape), jax.devices("cpu")[0]
    kernel = jax.device_put(jnp.asarray(layer.kernel[...], shape.dtype), cpu)
    bias = None if layer.bias is None else jax.device_put(jnp.asarray(layer.bias[...], shape.dtype), cpu)  # fmt: skip

    def form(f: str) -> Callable:
        if not after_upsample or f == "upsample":
            return _form(spec, f)
        return lambda x, k, b: _form(spec, f)(upsample2x(x), k, b)

    r = _random(jax.eval_shape(form("native"), x, kernel, bias), 1)
    fns = {f: (jax.jit(form(f)), jax.jit(_grads(form(f), order, (0, 1))))
           for f in _candidates(spec, after_upsample)}  # fmt: skip
    costs = _costs(fns, (x, kernel, bias), r)
    return dict(sorted(costs.items(), key=lambda kv: kv[1]))


def _model_costs(model: nnx.Module, layers: Mapping[str, nnx.Module], pairs: Mapping, example: tuple,
                 order: int, path: str, forms: Sequence[str], chosen: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """The whole model's value-plus-gradient time with layer ``path`` in each of ``forms`` and the
    others as ``chosen``."""
    args = tuple(_random(a, i) for i, a in enumerate(example))
    fns = {}
    for form in forms:
        _apply(layers, pairs, {**chosen, path: form})
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def value(params, *a, graphdef=graphdef, rest=rest):
            return nnx.merge(graphdef, params, rest, copy=True)(*a)

        r = _random(jax.eval_shape(value, params, *args), 99)
        fns[form] = (jax.jit(value), jax.jit(_grads(value, order, (0, 1))))
    _apply(layers, pairs, chosen)
    return _costs(fns, (nnx.split(model, nnx.Param, ...)[1], *args), r)


def _apply(layers: Mapping[str, nnx.Module], pairs: Mapping, forms: Mapping[str, str]) -> None:
    """Set each layer's form; an ``"upsample"`` layer's list entry before it becomes
    :func:`fused_upsample`, and back to an upsampling when the layer takes another form."""
    for path, form in forms.items():
        layer = layers[path]
        layer.__class__ = _on_cpu_class(type(layer))
        layer.cpu_form = form
        if path in pairs:
            container, i = pairs[path]
            if (form == "upsample") != (container[i] is fused_upsample):
                container[i] = fused_upsample if form == "upsample" else upsample2x


def cpu_forms(model: nnx.Module) -> dict[str, str]:
    """``{layer path: form}`` of every convolution :func:`for_cpu` has rewritten in ``model``."""
    return {p: layer.cpu_form for p, layer in _layers(model).items() if _rewritten(type(layer))}


def for_cpu(model: nnx.Module, *example: Any, order: int = 1,
            forms: Mapping[str, str] | None = None) -> nnx.Module:  # fmt: skip
    """Rewrite ``model``'s ``nnx.Conv`` / ``nnx.ConvTranspose`` layers in place to the form
    XLA:CPU runs fastest (see the module docstring); returns ``model``.

    ``example``: the model's call arguments, arrays or ``jax.ShapeDtypeStruct`` (the training batch
    shape: forms are timed at each layer's input shape). ``order``: 1 for a model differentiated
    once (a generator, a critic without a gradient penalty), 2 for one whose input gradient is
    differentiated again (a WGAN-GP critic). ``forms``: ``{layer path: form}`` to apply instead of
    timing (a :func:`cpu_forms` result: a run that must compute the same bits again reuses it).
    Parameters, their paths and the function computed are unchanged.
    """
    if order not in (1, 2):
        raise ValueError(f"for_cpu: order must be 1 or 2, got {order!r}.")
    layers = _layers(model)
    pairs = _pairs(model, layers)
    _apply(layers, pairs, {p: "native" for p in pairs})  # pairs fused before: upsampling again
    if forms is not None:
        bad = {p: f for p, f in forms.items() if p not in layers or f not in _candidates(_spec(layers[p]), p in pairs)}  # fmt: skip
        if bad:
            raise ValueError(f"for_cpu: forms {bad} name no rewritable layer of the model or no form it has (layers: {sorted(layers)}).")  # fmt: skip
        chosen = dict(forms)
    else:
        chosen = _choose(model, layers, pairs, example, order)
    _apply(layers, pairs, chosen)
    return model


def _choose(model: nnx.Module, layers: dict[str, nnx.Module], pairs: Mapping, example: tuple, order: int) -> dict[str, str]:  # fmt: skip
    """Each layer's form: its two fastest alone, then the fastest of those and native in the whole
    model (a layer's speed alone misjudges how it fuses with its neighbours), judged by
    :func:`_keep`. Cached per model signature and example shape."""
    shapes = _input_shapes(layers, model, example)
    sig = {p: (_spec(layers[p]), layers[p].kernel.shape, layers[p].bias is None, s.shape, str(s.dtype), p in pairs)
           for p, s in shapes.items() if s.ndim == 4}  # fmt: skip
    key = (tuple(sig.items()), tuple((tuple(a.shape), str(a.dtype)) for a in example), order)  # fmt: skip
    if key in _CHOICES:
        return dict(_CHOICES[key])
    alone = {p: _rank_layer(layers[p], _spec(layers[p]), shapes[p], order, p in pairs) for p in sig}
    chosen = {p: next(iter(costs)) for p, costs in alone.items()}
    for p, costs in alone.items():
        forms = list(costs)[:2]
        forms += [] if "native" in forms else ["native"]
        chosen[p] = _keep(_model_costs(model, layers, pairs, example, order, p, forms, chosen), costs["native"])  # fmt: skip
    _CHOICES[key] = dict(chosen)
    return chosen


def _keep(model_costs: Mapping[str, float], native_alone: float) -> str:
    """The form to keep, from the whole model's seconds with the layer in each form: the fastest,
    if it saves at least ``MIN_GAIN`` of the layer's own native time (``native_alone``), else
    ``"native"``. Judged on the layer's time, not the model's: a rewrite that halves a layer
    holding 15 % of the model saves 7.5 % of it, which a 10 % bar on the model would refuse, and
    one that saves ~10 % of the model would be kept or not as timing noise fell."""
    best = min(model_costs, key=model_costs.get)
    saved = model_costs["native"] - model_costs[best]
    return best if saved >= MIN_GAIN * native_alone else "native"
