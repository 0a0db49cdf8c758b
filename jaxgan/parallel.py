"""Data parallelism over a 1-D device mesh, and multi-host start-up.

The design: one mesh axis, ``"data"``. The global batch is sharded along it; every piece of
state (parameters, optimizer moments, EMA, RNG key) is replicated with a *fully specified*
``PartitionSpec(None, ..., None)`` so that ``jax.jit`` sees the same sharding every step and
compiles once. ``jax.jit`` inserts the gradient all-reduce itself; no ``pmap``, no ``pmean``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: every device of every host)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("make_mesh: `devices` is empty; at least one device is needed.")
    return Mesh(np.asarray(devs), (DATA_AXIS,))


def replicated_spec(ndim: int) -> PartitionSpec:
    """``PartitionSpec(None, ...)`` with one entry per axis (fully specified replication)."""
    return PartitionSpec(*([None] * ndim))


def replicated_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """A replicated sharding for an array of rank ``ndim``."""
    return NamedSharding(mesh, replicated_spec(ndim))


def batch_spec(ndim: int, batch_axis: int = 0) -> PartitionSpec:
    """Shard axis ``batch_axis`` over ``"data"``; every other axis replicated."""
    if not 0 <= batch_axis < ndim:
        raise ValueError(f"batch_spec: batch_axis={batch_axis} is outside an array of rank {ndim}.")
    spec: list[Any] = [None] * ndim
    spec[batch_axis] = DATA_AXIS
    return PartitionSpec(*spec)


def batch_sharding(mesh: Mesh, ndim: int, batch_axis: int = 0) -> NamedSharding:
    """A sharding that splits axis ``batch_axis`` over the mesh's data axis."""
    return NamedSharding(mesh, batch_spec(ndim, batch_axis))


def check_batch_divisible(global_batch: int, mesh: Mesh, name: str = "batch_size") -> None:
    """Raise a clear ValueError unless ``global_batch`` splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if global_batch <= 0:
        raise ValueError(f"{name} must be a positive integer, got {global_batch}.")
    if global_batch % n:
        raise ValueError(
            f"{name}={global_batch} is not divisible by the {n} devices of the mesh; "
            f"use a multiple of {n}."
        )


def tree_shardings(tree: Any, mesh: Mesh) -> Any:
    """A pytree of replicated shardings matching ``tree`` leaf by leaf."""
    return jax.tree.map(lambda x: replicated_sharding(mesh, np.ndim(x)), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf of ``tree`` on every device of ``mesh`` (fully specified replication).

    Works across hosts: each process passes the same values.
    """

    def put(x: Any) -> jax.Array:
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        sharding = replicated_sharding(mesh, x.ndim)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        local = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(local.shape, sharding, lambda idx: local[idx])

    return jax.tree.map(put, tree)


def shard_batch(local: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
    """Turn this process's slice of the global batch into global arrays sharded over ``"data"``.

    ``local`` is a pytree of host arrays holding this process's rows of the global batch
    (all rows on a single host). Built with ``jax.make_array_from_process_local_data`` so that
    the same call works on one host and on many.
    """

    def put(x: Any) -> jax.Array:
        x = np.asarray(x)
        sharding = batch_sharding(mesh, x.ndim, batch_axis)
        global_shape = list(x.shape)
        global_shape[batch_axis] = x.shape[batch_axis] * jax.process_count()
        return jax.make_array_from_process_local_data(sharding, x, tuple(global_shape))

    return jax.tree.map(put, local)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
) -> bool:
    """Start multi-host JAX through ``jax.distributed.initialize``.

    With explicit arguments, uses them (all three of address, count and id are needed). With none,
    initialises only where JAX can detect a cluster by itself (Cloud TPU pods, SLURM, Open MPI);
    on a single machine it does nothing. Returns True when the distributed runtime was started.
    """
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise ValueError(
                "distributed start-up needs all of --coordinator_address, --num_processes and "
                f"--process_id; got {coordinator_address!r}, {num_processes!r}, {process_id!r}."
            )
        if num_processes <= 0 or not 0 <= process_id < num_processes:
            raise ValueError(
                f"--process_id must be in [0, --num_processes), got {process_id} of {num_processes}."
            )
        # CPU processes need a collectives backend to talk to each other (GPUs/TPUs ignore this).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
        )
        return True
    if _cluster_detected():
        jax.distributed.initialize()
        return True
    return False


def _cluster_detected() -> bool:
    """True inside a SLURM job step with several tasks, an Open MPI job, or a multi-host TPU pod."""
    env = os.environ
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in env:
        return True
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return True
    hosts = env.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hosts
