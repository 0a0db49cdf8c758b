"""Worker for test_multihost.py: k SGD train steps on ring8 over a mesh spanning all processes.

Usage: python multihost_worker.py PROCESS_ID NUM_PROCESSES PORT LOCAL_DEVICES OUT.npz
"""

import os
import sys

pid, nproc, port, ndev, out = sys.argv[1:6]
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ndev}"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from jaxgan import data, losses, parallel  # noqa: E402
from jaxgan.models.mlp import MLPCritic, MLPGenerator  # noqa: E402
from jaxgan.training import step as train  # noqa: E402

if int(nproc) > 1:
    parallel.initialize_distributed(f"127.0.0.1:{port}", int(nproc), int(pid))
mesh = parallel.make_mesh()
assert mesh.devices.size == 8, mesh.devices.size
obj = losses.get("wgan-gp")
tx = optax.sgd(1e-3)
g = MLPGenerator(2, (2,), hidden=(32, 32), rngs=nnx.Rngs(0))
d = MLPCritic((2,), hidden=(32, 32), rngs=nnx.Rngs(1))
state, g_def, d_def = train.init_train_state(g, d, tx, tx, jax.random.key(0))
init = [np.asarray(x) for x in jax.tree.leaves((state.d_params, state.g_params))]
state = parallel.replicate(state, mesh)
step = jax.jit(
    train.make_train_step(g_def, d_def, obj, tx, tx, latent_dim=2),
    out_shardings=(parallel.tree_shardings(state, mesh), None),
)
pipe = data.load("ring8", batch_size=64, stack=5, seed=0, mesh=mesh, prefetch=0)
for _ in range(3):
    state, metrics = step(state, next(pipe)["x"], np.float32(1.0))
leaves = [
    np.asarray(x.addressable_data(0)) for x in jax.tree.leaves((state.d_params, state.g_params))
]
if int(pid) == 0:
    np.savez(
        out,
        **{f"p{i}": x for i, x in enumerate(leaves)},
        **{f"i{i}": x for i, x in enumerate(init)},
    )
print("done", pid, flush=True)
