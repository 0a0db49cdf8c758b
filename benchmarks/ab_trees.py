"""Interleaved A/B of one train step between two jaxgan trees (e.g. a commit's worktree and this one).

``python benchmarks/ab_trees.py CASE OLD_TREE [NEW_TREE] [--rounds 12 --steps 10]`` starts one
persistent worker per tree (the same hand-built models, objective and optimizers in both), then
times ``--steps`` steps in each, alternating the order every round, and prints both medians and
their ratio. Cases: toy, mnist_gp, mnist_clip, dcgan32, prog16 and prog32 (the main job's widths
at 16² / 32²). Make OLD_TREE with ``git worktree add /tmp/old REV``; ``--xla-flags-old`` /
``--xla-flags-new`` give each worker its own ``XLA_FLAGS`` (an A/B of one tree under two flag
sets: pass the same tree twice). Works with trees that name the step module ``jaxgan.training.step`` or
(before it was renamed) ``jaxgan.train``. Case ``main`` runs the whole main job instead
(``experiments/run.py`` with no flags, a fresh run directory each time) in each tree per round,
and prints wall seconds (``--rounds 1``: one pair, ~20 minutes).
"""

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time


def worker(case: str) -> None:
    """Build CASE's jitted step from the jaxgan on sys.path; time K steps per 'run K' line."""
    try:  # jaxgan's XLA flag, before JAX starts (in trees before this module: at import jaxgan)
        from jaxgan import xla_flags

        xla_flags.apply()
    except ImportError:
        pass
    import jax
    import numpy as np
    from flax import nnx

    try:
        from jaxgan.training import step as S
    except ImportError:
        from jaxgan import train as S
    from jaxgan import losses, optim, parallel

    rngs, res = nnx.Rngs(0), None
    if case == "toy":
        from jaxgan.models.mlp import MLPCritic, MLPGenerator

        g, d = MLPGenerator(2, (2,), rngs=rngs), MLPCritic((2,), rngs=rngs)
        obj = dataclasses.replace(losses.get("wgan-gp"), gp_weight=0.1, n_critic=5)
        gtx, dtx = optim.paper_optimizers(obj, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9))
        shape, batch, nc, latent = (2,), 256, 5, 2
    elif case in ("mnist_gp", "mnist_clip"):
        from jaxgan.models.mlp import MLPCritic, MLPGenerator

        g = MLPGenerator(100, (28, 28, 1), hidden=(128, 256, 512, 1024), activation="lrelu",
                         batchnorm=True, output="tanh", rngs=rngs)  # fmt: skip
        d = MLPCritic((28, 28, 1), hidden=(512, 256), activation="lrelu", rngs=rngs)
        if case == "mnist_gp":
            obj = dataclasses.replace(losses.get("wgan-gp"), gp_weight=10.0, n_critic=5)
            gtx, dtx = optim.paper_optimizers(obj, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))
        else:
            obj = dataclasses.replace(losses.get("wgan"), clip=0.01, n_critic=5)
            gtx, dtx = optim.paper_optimizers(obj, lr_g=5e-5, lr_d=5e-5)
        shape, batch, nc, latent = (28, 28, 1), 64, 5, 100
    elif case == "dcgan32":
        from jaxgan.models.dcgan import DCGANCritic, DCGANGenerator

        g = DCGANGenerator(32, 1, 128, base_width=32, rngs=rngs)
        d = DCGANCritic(32, 1, norm="none", base_width=32, rngs=rngs)
        obj = losses.get("wgan-gp")
        gtx, dtx = optim.paper_optimizers(obj)
        shape, batch, nc, latent = (32, 32, 1), 64, 5, 128
    elif case in ("prog16", "prog32"):
        from jaxgan.models.progressive import ProgressiveCritic, ProgressiveGenerator

        kw = dict(channels=1, fmap_base=256, fmap_max=64)
        g = ProgressiveGenerator(32, latent_dim=64, rngs=rngs, **kw)
        d = ProgressiveCritic(32, rngs=rngs, **kw)
        obj = dataclasses.replace(losses.get("wgan-gp"), n_critic=1, drift_weight=0.001)
        gtx, dtx = optim.paper_optimizers(obj, lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.99))
        res = int(case[4:])
        shape, batch, nc, latent = (res, res, 1), 32, 1, 64
    else:
        raise SystemExit(f"unknown case {case!r}")
    state, gdef, ddef = S.init_train_state(g, d, gtx, dtx, jax.random.key(0), ema=res is not None)
    kw = {}
    if res:
        kw = dict(g_apply=lambda m, x, a: m(x, res, None), d_apply=lambda m, x, a: m(x, res, None))
    fn = S.make_train_step(gdef, ddef, obj, gtx, dtx, latent_dim=latent,
                           ema_decay=0.99 if res else 0.0, **kw)  # fmt: skip
    mesh = parallel.make_mesh(jax.devices()[:1])
    state = parallel.replicate(state, mesh)
    sharding = parallel.tree_shardings(state, mesh)
    jitted = jax.jit(fn, out_shardings=(sharding, None), donate_argnums=0)
    x = np.random.default_rng(0).uniform(-1, 1, (nc, batch, *shape)).astype(np.float32)
    reals, alpha = parallel.shard_batch(x, mesh, batch_axis=1), np.float32(1.0)
    for _ in range(3):
        state, _ = jitted(state, reals, alpha)
    jax.block_until_ready(state)
    print("ready", flush=True)
    for line in sys.stdin:
        k = int(line.split()[1])
        t = time.perf_counter()
        for _ in range(k):
            state, _ = jitted(state, reals, alpha)
        jax.block_until_ready(state)
        print((time.perf_counter() - t) / k * 1000, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("case")
    p.add_argument("old_tree")
    p.add_argument("new_tree", nargs="?", default=os.path.dirname(os.path.dirname(__file__)) or ".")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--xla-flags-old", default="", help="XLA_FLAGS of the old worker")
    p.add_argument("--xla-flags-new", default="", help="XLA_FLAGS of the new worker")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.case)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if a.case == "main":
        return main_job(a, env)
    procs, flags = {}, {"old": a.xla_flags_old, "new": a.xla_flags_new}
    for name, tree in (("old", a.old_tree), ("new", a.new_tree)):
        cmd = [sys.executable, os.path.abspath(__file__), a.case, ".", "--worker"]
        procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env={**env, "PYTHONPATH": os.path.abspath(tree), "XLA_FLAGS": flags[name]}, cwd="/")  # fmt: skip
        assert procs[name].stdout.readline().strip() == "ready", name
    times: dict[str, list[float]] = {n: [] for n in procs}
    for r in range(a.rounds):
        for n in list(procs) if r % 2 == 0 else list(procs)[::-1]:
            procs[n].stdin.write(f"run {a.steps}\n")
            procs[n].stdin.flush()
            times[n].append(float(procs[n].stdout.readline()))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    old, new = (statistics.median(times[n]) for n in ("old", "new"))
    print(f"{a.case}: old {old:.2f} ms, new {new:.2f} ms, new/old x{new / old:.3f} "
          f"(medians of {a.rounds} rounds x {a.steps} steps)")  # fmt: skip


def main_job(a: argparse.Namespace, env: dict[str, str]) -> None:
    """The main job's wall seconds in each tree, alternating the order every round."""
    trees = {"old": a.old_tree, "new": a.new_tree}
    times: dict[str, list[float]] = {n: [] for n in trees}
    for r in range(a.rounds):
        for n in list(trees) if r % 2 == 0 else list(trees)[::-1]:
            tree = os.path.abspath(trees[n])
            with tempfile.TemporaryDirectory() as workdir:
                cmd = [sys.executable, os.path.join(tree, "experiments", "run.py"), "--quiet",
                       "--workdir", os.path.join(workdir, "run")]  # fmt: skip
                t = time.perf_counter()
                subprocess.run(cmd, env={**env, "PYTHONPATH": tree}, cwd=workdir, check=True,
                               stdout=subprocess.DEVNULL)  # fmt: skip
                times[n].append(time.perf_counter() - t)
            print(f"round {r + 1} {n}: {times[n][-1]:.1f} s", flush=True)
    old, new = (statistics.median(times[n]) for n in ("old", "new"))
    print(f"main: old {old:.1f} s, new {new:.1f} s, new/old x{new / old:.3f} (medians of {a.rounds} rounds)")  # fmt: skip


if __name__ == "__main__":
    main()
