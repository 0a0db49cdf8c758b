"""Interleaved A/B of the external peer cases' jaxgan side under three sets of convolution forms.

``python benchmarks/peers/ab_forms.py [CASE ...] [--rounds 6 --steps 3]`` builds, for each case
(default: both external ones; also `dcgan64`, jaxgan's DCGAN), one jitted train step per variant, in one process:

* ``plain``: the NNX port as a user writes it (every layer native);
* ``stride2``: only the stride-2 layers rewritten (``s2d`` / ``phase``): what the mirrors ran
  before ``for_cpu``, through ``StridedConv`` / ``StridedConvTranspose``;
* ``for_cpu``: the forms ``jaxgan.models.for_cpu`` picks by timing each layer;

then times ``--steps`` steps of each per round, the order rotating every round, and prints each
variant's median ms per generator iteration and its ratio to ``plain``. ``--choices N`` instead
lets ``for_cpu`` choose N times afresh (its per-process cache emptied) and prints each choice:
how stable the choice is on this host.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=["wgan_gp_mnist", "pytorch_gan_dcgan32"])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--choices", type=int, default=0, help="only choose N times, print each choice")
    a = p.parse_args()
    from jaxgan import xla_flags

    xla_flags.apply(announce=True)
    import dataclasses

    import cases as C
    import jax

    from jaxgan import parallel
    from jaxgan.models import cpu
    from peers import external as ext
    from peers import torch_models as T

    mesh = parallel.make_mesh(jax.devices()[:1])
    for name in a.cases:
        case = T.jaxgan_case(name)
        models = {"pytorch_gan_dcgan32": ext.pytorch_gan_dcgan32_models,
                  "wgan_gp_mnist": ext.wgan_gp_mnist_models}.get(name) or _jaxgan_models(case)  # fmt: skip
        for i in range(a.choices):
            cpu._CHOICES.clear()
            g, d = models(case.config)
            print(f"{name} choice {i + 1}: G {cpu.cpu_forms(g)}, D {cpu.cpu_forms(d)}", flush=True)
        if a.choices:
            continue
        g, d = models(case.config)  # for_cpu's own choice, timed per layer
        chosen = cpu.cpu_forms(g), cpu.cpu_forms(d)
        stride2 = tuple(
            {p: _stride2_form(m, p) for p in forms} for m, forms in zip((g, d), chosen, strict=True)
        )
        native = tuple(dict.fromkeys(forms, "native") for forms in chosen)
        variants = {"plain": functools.partial(models, forms=native),
                    "stride2": functools.partial(models, forms=stride2),
                    "for_cpu": functools.partial(models, forms=chosen)}  # fmt: skip
        print(f"{name}: for_cpu chose G {chosen[0]}, D {chosen[1]}", flush=True)
        runs = {}
        for v, fn in variants.items():
            state, jitted, reals = C.prepare(dataclasses.replace(case, models=fn), mesh)
            run, _ = C.stepper(jitted, state, reals)
            jax.block_until_ready(run(1))
            runs[v] = run
        times = {v: [] for v in runs}
        order = list(runs)
        for r in range(a.rounds):
            for v in order[r % len(order) :] + order[: r % len(order)]:
                t = time.perf_counter()
                jax.block_until_ready(runs[v](a.steps))
                times[v].append((time.perf_counter() - t) / a.steps)
        base = statistics.median(times["plain"])
        for v, ts in times.items():
            m = statistics.median(ts)
            print(f"  {v:<8} {1e3 * m:9.1f} ms/iter   x{base / m:.2f} vs plain", flush=True)


def _jaxgan_models(case):
    """``models(c, cpu=True, forms=None)`` for a case on jaxgan's own networks (DCGAN): built as
    the training loop builds them, then through ``for_cpu`` unless ``cpu`` is False."""
    from jaxgan.training import build
    from peers import external as ext

    def models(c, cpu: bool = True, forms=None):
        g, d = build.models(c, case.shape, c.output.seed)
        return ext.on_cpu(g, d, c, case.shape, forms) if cpu else (g, d)

    return models


def _stride2_form(model, path: str) -> str:
    """The rewrite a stride-2 layer had before ``for_cpu`` ("s2d" / "phase"); others native."""
    from flax import nnx

    layer = dict(nnx.iter_graph(model))[
        tuple(int(k) if k.isdigit() else k for k in path.split("."))
    ]
    if tuple(layer.strides if not isinstance(layer.strides, int) else (layer.strides,))[0] != 2:
        return "native"
    return "s2d" if isinstance(layer, nnx.Conv) else "phase"


if __name__ == "__main__":
    main()
