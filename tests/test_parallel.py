"""Multi-device runs on 4 forced host (CPU) devices equal single-device runs."""

import pytest

from tests.helpers import run_with_xla_emitters

PRELUDE = """
    import jax, jax.numpy as jnp, numpy as np
    assert len(jax.devices()) == 4, jax.devices()
    from dqs_jax import agent, agents, loop, parallel
    from dqs_jax.envs import gmm
    from dqs_jax.types import Batch

    config = agent.DQSConfig(hidden_dims=(32, 32), critic_hidden_dims=(32, 32),
                             embed_dim=8, num_mc_samples=16,
                             num_sampling_steps=4)
    state = agent.init(config, 5, 2, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = Batch(*(jnp.asarray(x, jnp.float32) for x in (
        rng.normal(size=(32, 5)), np.tanh(rng.normal(size=(32, 2))),
        rng.normal(size=32), np.ones(32), rng.normal(size=(32, 5)))))
"""

UPDATE = PRELUDE + """
    single = jax.jit(agent.update)
    multi = parallel.data_parallel_update(agent.update)
    s1, s4 = state, state
    for _ in range(3):
        s1, m1 = single(s1, batch)
        s4, m4 = multi(s4, batch)
    leaf = jax.tree_util.tree_leaves(s4.critic_params)[0]
    assert len(leaf.sharding.device_set) == 4  # Replicated on every device.
    for a, b in zip(jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(s4)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for k in m1:
        np.testing.assert_allclose(m1[k], m4[k], rtol=1e-4, atol=1e-5)
    try:
        multi(s4, Batch(*(x[:30] for x in batch)))
        raise AssertionError("expected a divisibility error")
    except ValueError as e:
        assert "divisible" in str(e)

    print("OK")
"""

SEEDS = PRELUDE + """
    # Seeds spread over the devices: same numbers as on one device.
    dqs = agents.get_agent("dqs")
    cfg = loop.LoopConfig(seed_steps=20, batch_size=8, replay_size=100)
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    spread = loop.train_in_chunks(dqs, config, gmm.environment(), cfg, 60,
                                  keys, 20, devices=jax.devices())
    local = loop.train_in_chunks(dqs, config, gmm.environment(), cfg, 60,
                                 keys, 20, devices=jax.devices()[:1])
    leaf = jax.tree_util.tree_leaves(spread.agent_state.score_params)[0]
    assert len(leaf.sharding.device_set) == 4
    # 40 learning steps through sampled actions amplify float noise a bit.
    for a, b in zip(jax.tree_util.tree_leaves(spread.agent_state),
                    jax.tree_util.tree_leaves(local.agent_state)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    print("OK")
"""


def run_on_four_devices(script):
    # XLA's own emitters: the sharded and local programs reassociate floats
    # differently, and 40 learning steps amplify that beyond the tolerance
    # under the suite's loop emitters.
    run_with_xla_emitters(script, "--xla_force_host_platform_device_count=4")


def test_data_parallel_update_on_four_host_devices_matches_one():
    run_on_four_devices(UPDATE)


@pytest.mark.slow
def test_seeds_spread_over_four_host_devices_match_one():
    run_on_four_devices(SEEDS)
