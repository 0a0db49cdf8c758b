"""The benchmark cases of ``benchmarks/run.py`` (issue 7): configurations and how each is measured.

A :class:`GanCase` is one full train step of ``jaxgan.train.make_train_step`` (n_critic critic
updates and one generator update), jitted exactly as ``jaxgan.engine.Run`` jits it:
``jax.jit(step, out_shardings=(state_sharding, None), donate_argnums=0)`` over a 1-D data mesh,
with the state replicated and the stacked real batch ``(n_critic, B, ...)`` sharded on axis 1.
The real batch is a fixed device array, so the step time excludes the input pipeline (measured
separately by :func:`measure_input`).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import _common as C  # noqa: N812
import numpy as np
from data_throughput import make_folder

PGGAN_BATCH = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}


@dataclasses.dataclass
class GanCase:
    """One train-step benchmark. ``config`` is printed and saved as is."""

    name: str
    config: dict[str, Any]
    build_models: Callable[[], tuple[Any, Any]]
    build_objective: Callable[[], Any]
    build_optimizers: Callable[[Any], tuple[Any, Any]]
    sample_shape: tuple[int, ...]
    batch: int
    n_critic: int
    latent_dim: int
    ema_decay: float = 0.0
    resolution: int | None = None  # progressive stage (stable phase)
    input_spec: tuple[str, int | None] | None = None  # (dataset, resolution) for the input case
    group: str = ""

    @property
    def images_per_iter(self) -> int:
        """Real samples one step consumes (n_critic batches)."""
        return self.n_critic * self.batch


# --- case definitions ----------------------------------------------------------------------


def _wgan_gp(gp_weight: float, n_critic: int, drift: float = 0.0):
    from jaxgan import losses

    return lambda: dataclasses.replace(
        losses.get("wgan-gp"), gp_weight=gp_weight, n_critic=n_critic, drift_weight=drift
    )


def _adam(lr: float, b1: float, b2: float):
    def build(objective):
        from jaxgan import optim

        return optim.paper_optimizers(objective, lr_g=lr, lr_d=lr, betas=(b1, b2))

    return build


def toy_case() -> GanCase:
    from flax import nnx

    from jaxgan.models.mlp import MLPCritic, MLPGenerator

    def build():
        rngs = nnx.Rngs(0)
        return MLPGenerator(2, (2,), rngs=rngs), MLPCritic((2,), rngs=rngs)

    return GanCase(
        name="toy",
        group="toy",
        config={
            "generator": "MLPGenerator noise 2 -> 512 -> 512 -> 512 -> 2, ReLU, linear out",
            "critic": "MLPCritic 2 -> 512 -> 512 -> 512 -> 1, ReLU, no norm",
            "loss": "wgan-gp",
            "gp_weight": 0.1,
            "n_critic": 5,
            "batch": 256,
            "optimizer": "adam lr 1e-4 b1 0.5 b2 0.9 (G and critic)",
            "ema": 0.0,
            "dtype": "float32",
            "unit": "generator iteration (5 critic steps + 1 generator step)",
        },
        build_models=build,
        build_objective=_wgan_gp(0.1, 5),
        build_optimizers=_adam(1e-4, 0.5, 0.9),
        sample_shape=(2,),
        batch=256,
        n_critic=5,
        latent_dim=2,
        input_spec=("ring8", None),
    )


def _mnist_models():
    from flax import nnx

    from jaxgan.models.mlp import MLPCritic, MLPGenerator

    rngs = nnx.Rngs(0)
    g = MLPGenerator(
        100,
        (28, 28, 1),
        hidden=(128, 256, 512, 1024),
        activation="lrelu",
        batchnorm=True,
        output="tanh",
        rngs=rngs,
    )
    d = MLPCritic((28, 28, 1), hidden=(512, 256), activation="lrelu", rngs=rngs)
    return g, d


_MNIST_MODELS = {
    "generator": "MLPGenerator 100 -> 128 -> 256 -> 512 -> 1024 -> 784 (28x28x1), LeakyReLU 0.2, "
    "BatchNorm after hidden layers 2-4, tanh out",
    "critic": "MLPCritic 784 -> 512 -> 256 -> 1, LeakyReLU 0.2, no norm",
}


def mnist_gp_case() -> GanCase:
    return GanCase(
        name="mnist_mlp_gp",
        group="mnist",
        config={
            **_MNIST_MODELS,
            "loss": "wgan-gp",
            "gp_weight": 10.0,
            "n_critic": 5,
            "batch": 64,
            "optimizer": "adam lr 2e-4 b1 0.5 b2 0.999 (G and critic)",
            "dtype": "float32",
            "unit": "generator iteration (5 critic steps + 1 generator step)",
        },
        build_models=_mnist_models,
        build_objective=_wgan_gp(10.0, 5),
        build_optimizers=_adam(2e-4, 0.5, 0.999),
        sample_shape=(28, 28, 1),
        batch=64,
        n_critic=5,
        latent_dim=100,
        input_spec=("mnist5k", 32),
    )


def mnist_clip_case() -> GanCase:
    from jaxgan import losses, optim

    def objective():
        return dataclasses.replace(losses.get("wgan"), clip=0.01, n_critic=5)

    def optimizers(obj):
        # RMSProp 5e-5 for both; the critic's chain ends in clip_weights(0.01).
        return optim.paper_optimizers(obj, lr_g=5e-5, lr_d=5e-5)

    return GanCase(
        name="mnist_mlp_clip",
        group="mnist",
        config={
            **_MNIST_MODELS,
            "loss": "wgan (weight clipping)",
            "clip": 0.01,
            "n_critic": 5,
            "batch": 64,
            "optimizer": "rmsprop lr 5e-5 decay 0.9 (G and critic), critic chain + clip_weights",
            "dtype": "float32",
            "unit": "generator iteration (5 critic steps + 1 generator step)",
        },
        build_models=_mnist_models,
        build_objective=objective,
        build_optimizers=optimizers,
        sample_shape=(28, 28, 1),
        batch=64,
        n_critic=5,
        latent_dim=100,
        input_spec=("mnist5k", 32),
    )


DCGAN_NORM = "layer"


def _dcgan_models(conv_impl: str = "auto"):
    from flax import nnx

    from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

    rngs = nnx.Rngs(0)
    g = DCGANGenerator(64, 3, 128, base_width=64, conv_impl=conv_impl, rngs=rngs)
    d = DCGANCritic(64, 3, norm=DCGAN_NORM, base_width=64, conv_impl=conv_impl, rngs=rngs)
    return g, d


def dcgan_case(conv_impl: str = "auto") -> GanCase:
    """``conv_impl``: jaxgan's DCGAN stride-2 layers ("auto": the stride-1 rewrite on CPU)."""
    return GanCase(
        name="dcgan64" if conv_impl == "auto" else f"dcgan64_{conv_impl}",
        group="dcgan64",
        config={
            "generator": "DCGANGenerator 64x64x3, latent 128, base width 64 (512-256-128-64), "
            "BatchNorm + ReLU, tanh out",
            "critic": f"DCGANCritic 64x64x3, widths 64-128-256-512, critic_norm={DCGAN_NORM}, "
            "LeakyReLU 0.2",
            "loss": "wgan-gp",
            "gp_weight": 10.0,
            "n_critic": 5,
            "batch": 64,
            "optimizer": "adam lr 1e-4 b1 0.0 b2 0.9 (WGAN-GP Algorithm 1 / 64x64 script)",
            "dtype": "float32",
            "conv_impl": conv_impl,
            "unit": "generator iteration (5 critic steps + 1 generator step)",
        },
        build_models=lambda: _dcgan_models(conv_impl),
        build_objective=_wgan_gp(10.0, 5),
        build_optimizers=_adam(1e-4, 0.0, 0.9),
        sample_shape=(64, 64, 3),
        batch=64,
        n_critic=5,
        latent_dim=128,
        input_spec=("folder", 64),
    )


_PGGAN_MODEL_CACHE: dict[tuple[int, str], tuple[Any, Any]] = {}


def pggan_case(res: int, dtype: str, final: int) -> GanCase:
    """PGGAN stable phase at ``res`` of networks built for ``final`` (shared across stages)."""

    def build():
        key = (final, dtype)
        if key not in _PGGAN_MODEL_CACHE:
            import jax.numpy as jnp
            from flax import nnx

            from jaxgan.models.progressive import ProgressiveCritic, ProgressiveGenerator

            dt = jnp.bfloat16 if dtype == "bfloat16" else None
            rngs = nnx.Rngs(0)
            kw = dict(channels=3, fmap_base=8192, fmap_max=512, dtype=dt, rngs=rngs)
            g = ProgressiveGenerator(final, latent_dim=512, **kw)
            d = ProgressiveCritic(final, mbstd_group_size=4, **kw)
            _PGGAN_MODEL_CACHE.clear()
            _PGGAN_MODEL_CACHE[key] = (g, d)
        return _PGGAN_MODEL_CACHE[key]

    batch = PGGAN_BATCH[res]
    return GanCase(
        name=f"pggan{res}_{'bf16' if dtype == 'bfloat16' else 'f32'}",
        group="pggan",
        config={
            "generator": f"ProgressiveGenerator final {final}, stage {res} stable, latent 512, "
            "fmap_base 8192, fmap_max 512",
            "critic": f"ProgressiveCritic final {final}, stage {res} stable, mbstd group 4",
            "loss": "wgan-gp",
            "gp_weight": 10.0,
            "drift": 0.001,
            "n_critic": 1,
            "batch": batch,
            "optimizer": "adam lr 1e-3 b1 0.0 b2 0.99 eps 1e-8",
            "ema": 0.999,
            "dtype": dtype,
            "resolution": res,
            "unit": "train step (1 critic step + 1 generator step)",
        },
        build_models=build,
        build_objective=_wgan_gp(10.0, 1, drift=0.001),
        build_optimizers=_adam(1e-3, 0.0, 0.99),
        sample_shape=(res, res, 3),
        batch=batch,
        n_critic=1,
        latent_dim=512,
        ema_decay=0.999,
        resolution=res,
        input_spec=("folder", res),
    )


# --- running a train-step case -------------------------------------------------------------


def critic_unrolled(unroll: bool | None) -> bool:
    """Whether jaxgan's train step runs the critic updates unrolled (else in a ``lax.scan``)."""
    import jax

    from jaxgan import train

    resolve = getattr(train, "_unroll", None)  # jaxgan's own rule, where it has one
    if resolve is not None:
        return bool(resolve(unroll))
    return jax.default_backend() == "cpu" if unroll is None else bool(unroll)


def prepare(case: GanCase, mesh, seed: int = 0):
    """(state, make_step, reals, alpha) for a case on ``mesh``; ``make_step(unroll)`` -> step."""
    import jax
    import jax.numpy as jnp

    from jaxgan import parallel, train

    objective = case.build_objective()
    g_tx, d_tx = case.build_optimizers(objective)
    g, d = case.build_models()
    state, g_def, d_def = train.init_train_state(
        g, d, g_tx, d_tx, jax.random.key(seed + 1), ema=case.ema_decay > 0
    )
    # Copy: donation must never free arrays that the (possibly cached) modules still hold.
    state = parallel.replicate(jax.tree.map(jnp.copy, state), mesh)
    kw: dict[str, Any] = {}
    if case.resolution is not None:
        from jaxgan.engine import progressive_apply

        apply = progressive_apply(case.resolution, False)
        kw = dict(g_apply=apply, d_apply=apply)

    def make_step(unroll: bool | None = None, **options: Any):
        """The train step; ``unroll``: jaxgan's ``unroll_critic`` (None: its per-backend default).

        ``options``: further ``make_train_step`` keywords (``batch_fakes``, ``skip_with``, ...).
        """
        return train.make_train_step(
            g_def,
            d_def,
            objective,
            g_tx,
            d_tx,
            latent_dim=case.latent_dim,
            ema_decay=case.ema_decay,
            unroll_critic=unroll,
            **kw,
            **options,
        )

    rng = np.random.default_rng(seed)
    host = rng.uniform(-1, 1, (case.n_critic, case.batch, *case.sample_shape)).astype(np.float32)
    reals = parallel.shard_batch(host, mesh, batch_axis=1)
    return state, make_step, reals, np.float32(1.0)


def run_gan_case(
    case: GanCase,
    *,
    mesh,
    reps: int,
    warmup: int,
    target_rep_s: float,
    budget_s: float,
    exact_flops: bool = False,
    max_step_s: float = 0.0,
    rate_hint: float | None = None,
    unroll: bool | None = None,
    pair: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Compile, count FLOPs, time and measure memory of one train step.

    ``pair``: a matmul peak sampler called before each timed repetition (see
    ``_common.time_iterations``); the result then has ``paired``: per repetition, the step's
    FLOP/s over the peak sampled just before it, and their median.

    ``budget_s``: warm-up plus repetitions are cut (down to zero warm-up and one repetition) so
    that they fit, using the first call's time. ``max_step_s`` > 0 with ``rate_hint`` (FLOP/s
    seen on a smaller stage): a case whose predicted step time exceeds it is skipped before
    compiling (returned with ``skipped``).
    """
    import jax

    from jaxgan import parallel

    unrolled = critic_unrolled(unroll)
    config = {**case.config, "critic_loop": "unrolled" if unrolled else "lax.scan"}
    out: dict[str, Any] = {"name": case.name, "group": case.group, "config": config}
    out["images_per_iter"] = case.images_per_iter
    with C.PeakMemory() as pm:
        t0 = time.perf_counter()
        state, make_step, reals, alpha = prepare(case, mesh)
        out["setup_s"] = time.perf_counter() - t0
        sharding = parallel.tree_shardings(state, mesh)
        step = jax.jit(make_step(unroll), out_shardings=(sharding, None), donate_argnums=0)

        t0 = time.perf_counter()
        lowered = step.lower(state, reals, alpha)
        lower_s = time.perf_counter() - t0
        flops: dict[str, Any] = {"critic_loop": "unrolled" if unrolled else "scan"}
        flops["xla_lowered"] = C.safe_cost_flops(lowered)
        other = None
        if case.n_critic > 1:
            # XLA's cost analysis counts a while-loop body once: a scanned step is under-counted
            # by (n_critic - 1) critic updates. Lower the other form of the step to see both.
            other = jax.jit(make_step(not unrolled)).lower(state, reals, alpha)
            key = "xla_lowered_scan" if unrolled else "xla_lowered_unrolled"
            flops[key] = C.safe_cost_flops(other)
        if unrolled or case.n_critic == 1:
            estimate = flops["xla_lowered"]
        else:
            estimate = flops.get("xla_lowered_unrolled")
        if max_step_s > 0 and rate_hint and estimate and estimate / rate_hint > max_step_s:
            out["skipped"] = (
                f"predicted {estimate / rate_hint:.0f} s/step ({estimate / 1e9:.0f} GFLOP at the "
                f"{rate_hint / 1e9:.1f} GFLOP/s of the previous stage) > --max-step-s {max_step_s:g}"
            )
            out["flops"] = flops
            return out

        with C.COMPILES.active() as counter:
            n0 = counter.count
            t1 = time.perf_counter()
            compiled = lowered.compile()
            compile_s = time.perf_counter() - t1
            n_compile = counter.count - n0
        out["compile"] = {
            "lower_s": lower_s,
            "compile_s": compile_s,
            "total_s": lower_s + compile_s,
            "backend_compiles": n_compile,
        }
        out["xla_memory"] = C.memory_analysis(compiled)

        flops["xla_compiled"] = C.safe_cost_flops(compiled)
        if unrolled or case.n_critic == 1:
            flops["per_iter"] = flops["xla_compiled"]
            flops["method"] = "compiled cost analysis (critic updates unrolled)"
        else:
            if exact_flops:
                t1 = time.perf_counter()
                flops["xla_compiled_unrolled"] = C.safe_cost_flops(other.compile())
                flops["unrolled_compile_s"] = time.perf_counter() - t1
            parts = (flops["xla_compiled"], flops["xla_lowered"], flops["xla_lowered_unrolled"])
            if flops.get("xla_compiled_unrolled") is not None:
                flops["per_iter"] = flops["xla_compiled_unrolled"]
                flops["method"] = "compiled cost analysis of the step with the critic unrolled"
            elif None not in parts:
                flops["per_iter"] = parts[0] + (parts[2] - parts[1])
                flops["method"] = (
                    "compiled cost analysis + the (n_critic - 1) critic updates it misses (the "
                    "difference between the unrolled and the scanned lowering)"
                )
            else:
                flops["per_iter"], flops["method"] = None, "unavailable"
        out["flops"] = flops

        holder: dict[str, Any] = {"state": state, "metrics": None}
        del state

        def run(k: int):
            s, m = holder["state"], holder["metrics"]
            for _ in range(k):
                s, m = step(s, reals, alpha)
            holder["state"], holder["metrics"] = s, m
            return s, m

        first, timing = C.time_within_budget(
            run,
            reps=reps,
            warmup=warmup,
            target_rep_s=target_rep_s,
            budget_s=budget_s,
            pair=pair,
        )
        out["compile"]["first_call_s"] = first
        out["compile"]["compiles_in_first_call"] = timing["compiles_in_first_call"]
        out["timing"] = timing
        last = jax.device_get(holder["metrics"])
        out["last_metrics"] = {k: float(v) for k, v in last.items()}
        holder.clear()
    out["memory"] = pm.result
    med = timing["median_s"]
    out["iters_per_s"] = 1.0 / med
    out["images_per_s"] = case.images_per_iter / med
    if flops.get("per_iter"):
        out["flops_per_s"] = flops["per_iter"] / med
        if timing.get("pair_samples"):
            ratios = [
                flops["per_iter"] / t / p
                for t, p in zip(timing["rep_times_s"], timing["pair_samples"], strict=True)
            ]
            out["paired"] = {"ratios": ratios, "median": statistics.median(ratios)}
    return out


# --- hand FLOP count of the toy case -------------------------------------------------------


def toy_hand_flops(batch: int = 256, n_critic: int = 5, width: int = 512) -> dict[str, Any]:
    """Matmul FLOPs of one toy WGAN-GP iteration, counted by hand (see README).

    Per linear layer of shape in×out on a batch B, a forward matmul is M = 2·B·in·out FLOPs, the
    input gradient another M and the weight gradient another M. ReLU critics have a piecewise
    constant derivative, so the penalty's second backward pass (w.r.t. the critic's weights) goes
    through the first backward pass only: per layer one weight-gradient and one input-gradient
    matmul, 2M.
    """
    g_layers = [(2, width), (width, width), (width, width), (width, 2)]
    d_layers = [(2, width), (width, width), (width, width), (width, 1)]

    def m(layers):
        return [2 * batch * a * b for a, b in layers]

    mg, md = m(g_layers), m(d_layers)
    f_g, f_d = sum(mg), sum(md)
    critic = {
        "G forward (fake batch)": f_g,
        "D forward real + fake": 2 * f_d,
        "D backward real + fake (weight grads all layers, input grads layers 2-4)": 2
        * (2 * f_d - md[0]),
        "GP: D forward at x_hat": f_d,
        "GP: input gradient at x_hat (first backward)": f_d,
        "GP: double backward (weight grad + grad of the first backward, per layer)": 2 * f_d
        - md[-1],
    }
    gen = {
        "G forward": f_g,
        "D forward on fake": f_d,
        "D backward (input grads only)": f_d,
        "G backward (weight grads all, input grads layers 2-4)": 2 * f_g - mg[0],
    }
    c_total, g_total = sum(critic.values()), sum(gen.values())
    return {
        "batch": batch,
        "n_critic": n_critic,
        "forward_G": f_g,
        "forward_D": f_d,
        "critic_step": critic,
        "critic_step_total": c_total,
        "generator_step": gen,
        "generator_step_total": g_total,
        "per_iter": n_critic * c_total + g_total,
    }


# --- gradient-penalty overhead -------------------------------------------------------------


def run_gp_overhead(
    which: str, *, mesh, reps: int, warmup: int, target_rep_s: float, budget_s: float
) -> dict[str, Any]:
    """A lone critic update (loss, optional penalty, Adam) with and without the penalty.

    Fakes are a fixed array (no generator), so the ratio is the critic's own cost of the penalty.
    """
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from jaxgan import losses, parallel, penalties

    if which == "toy":
        g, d = toy_case().build_models()
        shape, batch, lam = (2,), 256, 0.1
        desc = "toy critic MLP 2 -> 512x3 -> 1, batch 256, lambda 0.1"
    else:
        g, d = _dcgan_models()
        shape, batch, lam = (64, 64, 3), 64, 10.0
        desc = f"DCGAN 64x64 critic (norm {DCGAN_NORM}), batch 64, lambda 10"
    del g
    d_def, d_params, d_rest = nnx.split(d, nnx.Param, ...)
    tx = optax.adam(1e-4, b1=0.5, b2=0.9)
    rng = np.random.default_rng(1)
    real = parallel.shard_batch(rng.uniform(-1, 1, (batch, *shape)).astype(np.float32), mesh)
    fake = parallel.shard_batch(rng.uniform(-1, 1, (batch, *shape)).astype(np.float32), mesh)
    out: dict[str, Any] = {"name": f"gp_overhead_{which}", "config": desc, "rows": {}}
    for use_gp in (False, True):

        def loss_fn(params, rest, key, use_gp=use_gp):
            module = nnx.merge(d_def, params, rest)
            loss = losses.wasserstein_critic_loss(module(real), module(fake))
            if use_gp:
                loss = loss + lam * penalties.gradient_penalty(module, real, fake, key)
            return loss

        def update(carry):
            params, opt, key = carry
            key, sub = jax.random.split(key)
            grads = jax.grad(loss_fn)(params, d_rest, sub)
            upd, opt = tx.update(grads, opt, params)
            return optax.apply_updates(params, upd), opt, key

        carry0 = parallel.replicate(
            (
                jax.tree.map(jnp.copy, d_params),
                tx.init(d_params),
                jax.random.key_data(jax.random.key(0)),
            ),
            mesh,
        )

        def update_raw(carry):
            params, opt, kd = carry
            params, opt, key = update((params, opt, jax.random.wrap_key_data(kd)))
            return params, opt, jax.random.key_data(key)

        fn = jax.jit(update_raw, donate_argnums=0)
        t0 = time.perf_counter()
        compiled = fn.lower(carry0).compile()
        compile_s = time.perf_counter() - t0
        flops = C.safe_cost_flops(compiled)
        holder = {"c": carry0}

        def run(k: int, fn=fn, holder=holder):
            c = holder["c"]
            for _ in range(k):
                c = fn(c)
            holder["c"] = c
            return c

        _, timing = C.time_within_budget(
            run, reps=reps, warmup=warmup, target_rep_s=target_rep_s, budget_s=budget_s
        )
        key = "with_gp" if use_gp else "without_gp"
        out["rows"][key] = {
            "timing": timing,
            "compile_s": compile_s,
            "flops": flops,
            "flops_per_s": flops / timing["median_s"] if flops else None,
        }
    w, wo = out["rows"]["with_gp"], out["rows"]["without_gp"]
    out["time_ratio"] = w["timing"]["median_s"] / wo["timing"]["median_s"]
    out["flops_ratio"] = w["flops"] / wo["flops"] if w["flops"] and wo["flops"] else None
    return out


# --- input pipeline ------------------------------------------------------------------------


class InputFolders:
    """A temporary folder of JPEGs at the largest resolution any image case needs."""

    def __init__(self, size: int, n: int = 128):
        self.size = size
        self._tmp = tempfile.TemporaryDirectory(prefix="jaxgan_bench_")
        make_folder(self._tmp.name, n, size)
        self.path = self._tmp.name
        self.files = n

    def close(self) -> None:
        self._tmp.cleanup()


def measure_input(
    spec: str,
    *,
    resolution: int | None,
    batch: int,
    stack: int | None,
    mesh,
    batches: int,
    warmup: int = 3,
) -> dict[str, Any]:
    """Images/s of ``jaxgan.data.load`` (next(pipe) until on device) at a case's batch/stack."""
    from jaxgan import data

    t0 = time.perf_counter()
    pipe = data.load(spec, batch_size=batch, resolution=resolution, seed=0, mesh=mesh, stack=stack)
    setup = time.perf_counter() - t0
    try:
        for _ in range(warmup):
            next(pipe)["x"].block_until_ready()
        t0 = time.perf_counter()
        for _ in range(batches):
            next(pipe)["x"].block_until_ready()
        dt = time.perf_counter() - t0
    finally:
        pipe.close()
    per = batch * (stack or 1)
    return {
        "images_per_s": batches * per / dt,
        "ms_per_step_batch": 1e3 * dt / batches,
        "images_per_step_batch": per,
        "setup_s": setup,
        "batches": batches,
    }
