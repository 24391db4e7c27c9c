"""Multi-device execution with `jax.sharding`: a data-parallel update and
seeds spread over devices.

Both are the single-device computation with shardings attached: XLA splits
the batch (or the seed axis) over the devices and inserts the reductions, so
gradients are averaged over the whole batch and the numbers match the
single-device run up to float reassociation.
"""

from typing import Any, Callable, Optional, Sequence, Tuple

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from dqs_jax.types import Batch, Metrics


def make_mesh(axis_name: str, devices: Optional[Sequence[Any]] = None
              ) -> Mesh:
    """A 1-D mesh over `devices` (default: all)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (axis_name,))


def data_parallel_update(update_fn: Callable[[Any, Batch], Tuple[Any,
                                                                 Metrics]],
                         devices: Optional[Sequence[Any]] = None,
                         donate: bool = False):
    """`update_fn` jitted with the batch split over `devices` along its
    leading axis and the state replicated.

    Returns:
      `step(state, batch) -> (state, metrics)`; `B` must be divisible by the
      number of devices.
    """
    mesh = make_mesh("data", devices)
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec("data"))
    jitted = jax.jit(update_fn, in_shardings=(replicated, split),
                     out_shardings=(replicated, replicated),
                     donate_argnums=(0,) if donate else ())
    num_devices = mesh.size

    def step(state, batch: Batch):
        if batch.observations.shape[0] % num_devices:
            raise ValueError(
                f"batch size {batch.observations.shape[0]} is not divisible "
                f"by the {num_devices} devices.")
        return jitted(state, batch)

    return step


def shard_seeds(tree: Any, devices: Optional[Sequence[Any]] = None) -> Any:
    """Places a pytree with a leading seed axis so that the seeds are spread
    over `devices` (the number of seeds must be divisible by their count).
    Jitted, vmapped functions of it then run each device's seeds there."""
    mesh = make_mesh("seeds", devices)
    leaves = jax.tree_util.tree_leaves(tree)
    if leaves and leaves[0].shape[0] % mesh.size:
        raise ValueError(f"{leaves[0].shape[0]} seeds are not divisible by "
                         f"the {mesh.size} devices.")
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("seeds")))
