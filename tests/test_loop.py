"""The jitted loop against a plain Python loop, multi-seed vmap, evaluation."""

import jax
import jax.numpy as jnp
import numpy as np

from dqs_jax import agents, loop
from dqs_jax.agent import DQSConfig
from dqs_jax.envs import gmm
from tests.helpers import assert_same_training, run_with_xla_emitters

AGENT = agents.get_agent("dqs")
CONFIG = DQSConfig(hidden_dims=(16, 16), critic_hidden_dims=(16, 16),
                   embed_dim=4, num_mc_samples=4, num_sampling_steps=3,
                   init_temperature=1.0, final_temperature=1.0)
LOOP = loop.LoopConfig(seed_steps=60, batch_size=8, replay_size=500)
ENV = gmm.environment()
NUM_STEPS = 250  # Crosses two episode ends (100 steps each).
# The other comparisons share one run length and two seeds, so that their
# whole runs compile once (the suite's XLA cache, tests/conftest.py).
SHORT = 160
KEYS = jax.random.split(jax.random.PRNGKey(1), 2)


def python_loop(key):
    """The same run, one environment step at a time from Python."""
    act = jax.jit(AGENT.act)
    update = jax.jit(AGENT.update)
    env_step = jax.jit(gmm.step)
    agent_key, env_key, key = jax.random.split(key, 3)
    state = AGENT.init(CONFIG, 2, 2, agent_key)
    env_state, obs = gmm.reset(env_key)
    storage = {k: [] for k in ("obs", "act", "rew", "disc", "next")}
    rewards, episode_returns, ret = [], [], 0.0
    for t in range(NUM_STEPS):
        key, act_key, sample_key, reset_key = jax.random.split(key, 4)
        if t < LOOP.seed_steps:
            action = jax.random.uniform(act_key, (2,), jnp.float32, -1.0, 1.0)
        else:
            action = act(state, obs[None], act_key)[0]
        env_state, next_obs, reward, discount, done = env_step(env_state,
                                                               action)
        for name, value in zip(storage, (obs, action, reward, discount,
                                         next_obs)):
            storage[name].append(np.asarray(value))
        if t >= LOOP.seed_steps:
            size = len(storage["obs"])
            idx = np.asarray(jax.random.randint(sample_key, (LOOP.batch_size,),
                                                0, size))
            batch = loop.Batch(*(jnp.asarray(np.stack(storage[n])[idx])
                                 for n in storage))
            state, _ = update(state, batch)
        rewards.append(float(reward))
        ret += float(reward)
        if bool(done):
            episode_returns.append(ret)
            ret = 0.0
            env_state, obs = gmm.reset(reset_key)
        else:
            obs = next_obs
    return state, np.array(rewards), episode_returns


def test_jitted_loop_equals_python_loop():
    key = jax.random.PRNGKey(7)
    train = jax.jit(loop.make_train(AGENT, CONFIG, ENV, LOOP, NUM_STEPS))
    final, info = train(key)
    ref_state, ref_rewards, ref_returns = python_loop(key)
    np.testing.assert_allclose(info.reward, ref_rewards, rtol=1e-4, atol=1e-3)
    done = np.asarray(info.done)
    assert np.flatnonzero(done).tolist() == [99, 199]
    np.testing.assert_allclose(np.asarray(info.episode_return)[done],
                               ref_returns, rtol=1e-4)
    assert int(final.env_step) == NUM_STEPS
    assert int(final.agent_state.step) == NUM_STEPS - LOOP.seed_steps
    assert int(final.buffer.size) == NUM_STEPS
    start = AGENT.init(CONFIG, 2, 2, jax.random.split(key, 3)[0])
    assert_same_training(final.agent_state, ref_state, start)
    # Seed-phase steps carry zero metrics; learning steps real ones.
    losses = np.asarray(info.metrics["critic_loss"])
    assert np.all(losses[:LOOP.seed_steps] == 0)
    assert np.all(losses[LOOP.seed_steps:] > 0)


def test_vmapped_seeds_match_single_runs():
    train = loop.make_train(AGENT, CONFIG, ENV, LOOP, SHORT)
    batched, batched_info = jax.jit(jax.vmap(train))(KEYS)
    single, single_info = jax.jit(train)(KEYS[1])
    np.testing.assert_allclose(batched_info.reward[1], single_info.reward,
                               rtol=1e-4, atol=1e-3)
    start = AGENT.init(CONFIG, 2, 2, jax.random.split(KEYS[1], 3)[0])
    assert_same_training(
        jax.tree_util.tree_map(lambda x: x[1], batched.agent_state),
        single.agent_state, start)
    # Seeds differ.
    assert not np.allclose(batched_info.reward[0], batched_info.reward[1])


def check_chunked_run_equals_whole_run():
    key = KEYS[1]
    whole, whole_info = jax.jit(loop.make_train(AGENT, CONFIG, ENV, LOOP,
                                                SHORT))(key)
    run = jax.jit(loop.run_steps, static_argnums=(0, 1, 2, 4),
                  static_argnames="learn")
    state = loop.init(AGENT, CONFIG, ENV, LOOP, key)
    state, _ = run(AGENT, ENV, LOOP, state, LOOP.seed_steps, learn=False)
    rewards = []
    for _ in range(2):
        state, info = run(AGENT, ENV, LOOP, state, 50, learn=True)
        rewards.append(info.reward)
    np.testing.assert_allclose(np.concatenate(rewards),
                               whole_info.reward[LOOP.seed_steps:],
                               rtol=1e-4, atol=1e-3)


def test_evaluate_equals_stepping_the_episodes_in_python():
    state = AGENT.init(CONFIG, 2, 2, jax.random.PRNGKey(0))
    key, n = jax.random.PRNGKey(1), 16
    evaluate = jax.jit(loop.evaluate, static_argnums=(0, 1, 4, 5))
    result = evaluate(AGENT, ENV, state, key, n, False)
    assert result.final_observations.shape == (n, 2)

    reset_key, act_key = jax.random.split(key)
    env_states, obs = jax.vmap(gmm.reset)(jax.random.split(reset_key, n))
    act, step = jax.jit(AGENT.act), jax.jit(jax.vmap(gmm.step))
    returns = np.zeros(n)
    for step_key in jax.random.split(act_key, gmm.EPISODE_LENGTH):
        env_states, obs, rewards, _, done = step(env_states,
                                                 act(state, obs, step_key))
        returns += np.asarray(rewards)
    assert np.all(np.asarray(done))  # Every episode ends at step 100.
    np.testing.assert_allclose(result.final_observations, obs, rtol=1e-5,
                               atol=1e-4)
    np.testing.assert_allclose(result.returns, returns, rtol=1e-4)


def check_train_in_chunks_equals_vmapped_whole_run():
    keys = KEYS
    whole, whole_info = jax.jit(jax.vmap(loop.make_train(
        AGENT, CONFIG, ENV, LOOP, SHORT)))(keys)
    seen, states = [], []
    chunked = loop.train_in_chunks(
        AGENT, CONFIG, ENV, LOOP, SHORT, keys, chunk_size=50,
        on_chunk=lambda done, info: seen.append((done, info.reward.shape)),
        on_state=lambda done, state: states.append(
            (done, np.asarray(state.env_step))))
    assert seen == [(60, (2, 60)), (110, (2, 50)), (160, (2, 50))]
    # on_state sees each learning chunk's end state (not the seed phase).
    assert [(d, list(e)) for d, e in states] == [(110, [110, 110]),
                                                 (160, [160, 160])]
    for i in range(2):
        start = AGENT.init(CONFIG, 2, 2, jax.random.split(keys[i], 3)[0])
        pick = lambda tree: jax.tree_util.tree_map(  # noqa: E731
            lambda x: x[i], tree)
        assert_same_training(pick(chunked.agent_state),
                             pick(whole.agent_state), start)
    np.testing.assert_array_equal(chunked.env_step, [SHORT, SHORT])


def test_chunked_runs_equal_whole_runs():
    """A run in jitted chunks equals the whole run compiled at once (single
    and vmapped over seeds). Two programs of one computation: compared with
    XLA's own emitters (`run_with_xla_emitters`)."""
    run_with_xla_emitters("""
        from tests import test_loop
        test_loop.check_chunked_run_equals_whole_run()
        test_loop.check_train_in_chunks_equals_vmapped_whole_run()
        print("OK")
        """)
