"""Expert -> student distillation (DAgger, SafeDAgger) on the toy pixel task ``toy/reach2d``,
whose expert is a known linear function of the state: every stored observation, label,
action and count is checked against a host-side replay of the environment, the expert and
the student's network."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.distill import dagger, dataset, experts
from vasa.distill.augment import StrongAugConfig
from vasa.distill.distractors import DistractorConfig
from vasa.envs.tasks.reach2d import SPEED, Reach2D, linear_expert_action
from vasa.run import RunConfig

E, S = 8, 8  # environments; seeding steps of each
TOY = dagger.DAggerConfig(
    env="toy/reach2d", image_size=16, frame_stack=2, action_repeat=1, num_envs=E, expert_steps=S, student_steps=300,
    dataset_size=1024, batch_size=32, learning_rate=3e-3, hidden_layers=(64, 64), safety_layers=(32,), feature_dim=32,
    # position-preserving operators only (a shifted blob would contradict its label) and a faint mixup
    augment=StrongAugConfig(ops=("mixup", "none"), mixup_alpha=(0.6, 0.9)),
    distractors=DistractorConfig(sources=("shapes",), num_images=64, image_size=(16, 16)))
QUIET = dict(progress=False, num_eval_envs=4)


def _copy(tree):
    return jax.tree.map(lambda x: x.copy(), tree)


def _host(tree):
    return jax.tree.map(np.asarray, tree)


class Programs(types.SimpleNamespace):
    """A config's compiled seeding rollout and single iteration, and fresh states."""

    def fresh(self):
        return dagger.init(self.config, self.expert, self.env)


def _programs(config, seed=True, step=True):
    expert = experts.reach2d_expert()
    env = dagger.make_env(config)
    p = Programs(config=config, expert=expert, env=env, student=dagger.Student(config, env))
    state = p.fresh()
    if seed:
        p.seed = dagger.make_seed(config, expert, env).lower(state).compile()
    if step:
        p.step = dagger.make_train_step(config, expert, env).lower(state).compile()
    return p


@pytest.fixture(scope="module")
def toy():
    return _programs(TOY)


def _env_step(env):
    return jax.jit(jax.vmap(env.step))


def _moved(before, action):
    """The toy's dynamics, independently: clip(p + SPEED * clip(a))."""
    return np.clip(before + SPEED * np.clip(action, -1, 1), -1, 1)


def test_reach2d_renders_the_point_and_stacks_frames():
    import vasa.envs as envs

    env = envs.make("toy/reach2d", pixels=True, image_size=16, frame_stack=2, action_repeat=1)
    assert env.observation_spec["pixels"].shape == (16, 16, 6) and env.observation_spec["proprio"].shape == (2,)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    nxt = jax.jit(env.step)(state, jnp.array([1.0, -1.0]))
    pixels, p = np.asarray(nxt.obs["pixels"]), np.asarray(nxt.obs["proprio"])
    np.testing.assert_allclose(p, np.clip(np.asarray(state.obs["proprio"]) + SPEED * np.array([1.0, -1.0]), -1, 1))
    np.testing.assert_array_equal(pixels[..., :3], state.obs["pixels"][..., 3:])  # oldest frame first
    row, col = np.unravel_index(np.argmax(pixels[..., 3].astype(int)), (16, 16))  # the blob's centre: x right, y up
    assert abs(col - (p[0] + 1) / 2 * 15) <= 0.5 and abs(row - (1 - p[1]) / 2 * 15) <= 0.5
    with pytest.raises(ValueError, match="appearance='color_hard' is not allowed for toy/reach2d"):
        envs.make("toy/reach2d", pixels=True, appearance="color_hard")


def test_dataset_ring_adds_masked_observations_in_order():
    add = jax.jit(dataset.add)
    data = dataset.create((1,), jnp.uint8, 1, capacity=5)
    obs = jnp.arange(4, dtype=jnp.uint8)[:, None]
    data = add(data, obs, obs.astype(jnp.float32), jnp.array([True, False, True, True]))
    assert int(data.count[0]) == 3 and int(data.size()) == 3
    np.testing.assert_array_equal(data.obs[:3, 0], [0, 2, 3])
    data = add(data, obs + 10, obs.astype(jnp.float32) + 10, jnp.ones(4, bool))  # wraps: 10, 11 at the end, 12, 13 first
    np.testing.assert_array_equal(data.obs[:, 0], [12, 13, 3, 10, 11])
    np.testing.assert_array_equal(data.label[:, 0], [12, 13, 3, 10, 11])
    assert int(data.count[0]) == 7 and int(data.size()) == 5
    small = dataset.add(dataset.create((1,), jnp.uint8, 1, 8), obs[:2], obs[:2].astype(jnp.float32))
    drawn, _, _ = jax.jit(dataset.sample, static_argnums=2)(small, jax.random.PRNGKey(0), 64)
    assert set(np.asarray(drawn[:, 0]).tolist()) == {0, 1}  # only stored entries are drawn


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("stored", [1, 2, 7, 10, 64])
def test_holdout_split_draws_each_split_uniformly(stored, k):
    slots = jax.jit(dataset.slots, static_argnums=(2, 3, 4))
    key = jax.random.PRNGKey(stored * 10 + k)
    held = np.asarray(slots(jnp.int32(stored), key, 4000, k, True))
    train = np.asarray(slots(jnp.int32(stored), key, 4000, k, False))
    expect_held = [i for i in range(stored) if i % k == 0]
    expect_train = [i for i in range(stored) if i % k]
    assert set(held.tolist()) == set(expect_held)  # every held-out slot, nothing else
    if expect_train:
        assert set(train.tolist()) == set(expect_train)
        counts = np.bincount(train, minlength=stored)[expect_train]
        assert counts.min() > 0.6 * counts.mean()  # uniform within the split (4000 draws)
    everything = np.asarray(slots(jnp.int32(stored), key, 4000, 0, False))
    assert set(everything.tolist()) == set(range(stored))


@pytest.mark.parametrize("alpha,holdout", [(1.0, 0), (0.6, 0), (0.6, 3), (0.0, 0)])
def test_prioritised_slots_follow_priority_to_the_alpha(alpha, holdout):
    """Draw frequencies against p_i^alpha / sum p^alpha (NumPy), chi-square; only stored slots of
    the training split are drawn."""
    stored, n, draws = 7, 10, 20_000
    data = dataset.add(dataset.create((1,), jnp.uint8, 1, n, prioritised=True), jnp.zeros((stored, 1), jnp.uint8),
                       jnp.zeros((stored, 1)))
    np.testing.assert_array_equal(np.asarray(data.priority), [1.0] * stored + [0.0] * (n - stored))  # new: 1 when empty
    priority = np.array([0.05, 2.0, 0.5, 1.0, 0.01, 3.0, 0.3], np.float32)
    data = dataset.set_priority(data, jnp.arange(stored), jnp.asarray(priority), eps=0.0)
    drawn = np.asarray(jax.jit(dataset.prioritised_slots, static_argnums=(2, 3, 4))(
        data, jax.random.PRNGKey(3), draws, alpha, holdout))
    eligible = np.array([holdout == 0 or i % holdout != 0 for i in range(stored)])
    assert set(drawn.tolist()) == set(np.flatnonzero(eligible).tolist())
    expected = np.where(eligible, priority ** alpha, 0.0)
    expected = expected / expected.sum() * draws
    counts = np.bincount(drawn, minlength=stored)[eligible]
    chi2 = float(((counts - expected[eligible]) ** 2 / expected[eligible]).sum())
    assert chi2 < 20.5, (chi2, counts, expected)  # 99.9% quantile of chi-square with 4-6 dof: 18.5-22.5
    # entries added later get the largest priority stored, so they are drawn soon
    data = dataset.add(data, jnp.ones((2, 1), jnp.uint8), jnp.ones((2, 1)))
    np.testing.assert_allclose(np.asarray(data.priority[stored:stored + 2]), [3.0, 3.0])


def test_prioritised_dagger_reweights_the_batch_by_the_students_loss():
    """With priority_exponent the student's loss on a drawn entry becomes its priority (+ 1e-3),
    the others keep theirs, and the student still learns the toy's linear expert."""
    one = _programs(dataclasses.replace(TOY, priority_exponent=1.0, batch_size=1))
    state = one.fresh()
    assert state.data.priority is not None and dagger.init(TOY, one.expert, one.env).data.priority is None
    state, _ = one.seed(state)
    np.testing.assert_array_equal(np.asarray(state.data.priority[:S * E]), 1.0)  # seeded entries: 1
    state, metrics = one.step(state)
    priority = np.asarray(state.data.priority)
    changed = np.flatnonzero(priority[: (S + 1) * E] != 1.0)  # the step's new entries got the largest, 1
    assert len(changed) == 1 and (priority[(S + 1) * E:] == 0).all()
    np.testing.assert_allclose(priority[changed[0]], float(metrics["student_loss"]) + 1e-3, rtol=1e-6)
    before, after, _ = _learn(_programs(dataclasses.replace(TOY, priority_exponent=1.0)), 300)
    assert before > 0.9 and after < before / 3, (before, after)


def test_dagger_seeds_with_the_expert_then_adds_every_student_step(toy):
    state = toy.fresh()
    env_state = _host(state.env_state)
    state, metrics = toy.seed(state)
    n = S * E
    assert int(state.data.count.sum()) == int(state.queries) == int(metrics["dataset_size"]) == n
    # host replay of the seeding rollout: the expert acts and labels every observation
    step = _env_step(toy.env)
    replay = jax.tree.map(jnp.asarray, env_state)
    data = _host(state.data)
    for t in range(S):
        p = np.asarray(replay.obs["proprio"])
        np.testing.assert_array_equal(data.obs[t * E:(t + 1) * E], replay.obs["pixels"])
        np.testing.assert_allclose(data.label[t * E:(t + 1) * E], linear_expert_action(p), atol=1e-6)
        replay = step(replay, linear_expert_action(replay.obs["proprio"]))
    np.testing.assert_allclose(state.env_state.obs["proprio"], replay.obs["proprio"], atol=1e-6)

    # each iteration: the student acts in every env (before its update), the expert labels all
    for i in range(3):
        before, params = _host(state.env_state.obs), _copy(state.student)
        state, metrics = toy.step(state)
        n += E
        assert int(state.data.count.sum()) == int(state.queries) == int(metrics["dataset_size"]) == n
        assert float(metrics["student_fraction"]) == 1.0 and np.isfinite(float(metrics["student_loss"]))
        new = slice(n - E, n)
        np.testing.assert_array_equal(state.data.obs[new], before["pixels"])
        np.testing.assert_allclose(state.data.label[new], linear_expert_action(before["proprio"]), atol=1e-6)
        a_s = np.asarray(toy.student.policy(params, before["pixels"]))
        np.testing.assert_allclose(state.env_state.obs["proprio"], _moved(before["proprio"], a_s), atol=1e-5)
        assert not np.array_equal(a_s, toy.student.policy(state.student, before["pixels"]))  # then it learned
        err = np.linalg.norm(a_s - linear_expert_action(before["proprio"]), axis=-1).mean()
        np.testing.assert_allclose(float(metrics["action_error"]), err, rtol=1e-4)
    assert int(state.iteration) == 3


def _held_out_error(student, params, n=256, size=TOY.image_size):
    """Mean ||pi_s(o) - pi_e(o)|| on fresh positions (reset-like observations: repeated frames)."""

    @jax.jit
    def error(params):
        pos = jax.random.uniform(jax.random.PRNGKey(123), (n, 2), minval=-1, maxval=1)
        frames = jax.vmap(lambda p: Reach2D().render_rgb(p, size, size))(pos)
        pixels = jnp.concatenate([frames] * TOY.frame_stack, axis=-1)
        return jnp.mean(jnp.linalg.norm(student.policy(params, pixels) - linear_expert_action(pos), axis=-1))

    return float(error(params))


def _learn(programs, iterations):
    state, _ = programs.seed(programs.fresh())
    size = programs.config.image_size
    before = _held_out_error(programs.student, state.student, size=size)
    for _ in range(iterations):
        state, metrics = programs.step(state)
    return before, _held_out_error(programs.student, state.student, size=size), metrics


def test_student_learns_the_linear_expert_from_augmented_pixels(toy):
    # about 4-6 s on a 2-core CPU. The held-out error falls fast, then wanders (0.33-0.54 between 150 and
    # 300 steps with YNNPACK's kernels, 0.22-0.43 with Eigen's): measured 1.23 -> 0.17 / 0.16 at 500
    before, after, metrics = _learn(toy, 500)
    assert before > 0.9 and after < before / 3, (before, after)
    assert int(metrics["expert_queries"]) == (S + 500) * E and int(metrics["dataset_size"]) == TOY.dataset_size  # full ring


def test_keypoint_student_learns_the_linear_expert():
    # the spatial-softmax student (features="keypoints") on 32 px frames, where DrQ's encoder leaves a 9x9 map
    config = dataclasses.replace(TOY, image_size=32, features="keypoints",
                                 distractors=dataclasses.replace(TOY.distractors, image_size=(32, 32)))
    before, after, _ = _learn(_programs(config), 300)
    assert before > 0.9 and after < before / 3, (before, after)


@pytest.mark.slow
def test_student_imitates_closely_with_more_steps(toy):
    before, after, _ = _learn(toy, 1500)  # about 10 s; measured 1.23 -> 0.085
    assert after < before / 8, (before, after)


def _last_dense(params):
    head = params["params"]["safety"]
    return head[f"Dense_{len(head) - 1}"]


def _with_safety_bias(state, bias):
    student = jax.tree.map(lambda x: x, state.student)  # a new dict tree, same leaves
    dense = _last_dense(student)
    dense["bias"] = jax.device_put(jnp.full_like(dense["bias"], bias), dense["bias"].sharding)
    return state.replace(student=student)


def test_safedagger_queries_the_expert_only_where_the_head_says_unsafe():
    # safety_weight=0 keeps the head's parameters fixed, so its outputs are forced through its bias; a
    # tiny learning rate keeps the encoder's update from moving the logits across a bias set between them
    safe = _programs(dataclasses.replace(TOY, safe=True, safety_weight=0.0, learning_rate=1e-9))
    state, _ = safe.seed(safe.fresh())
    queries = S * E
    assert int(state.queries) == queries  # the seeding rollout labels everything

    # step 1: a bias splitting the envs' logits at their median (half unsafe); steps 2, 3: all unsafe, all safe
    logits = np.asarray(safe.student.apply(state.student, state.env_state.obs["pixels"])[1])
    split = np.sort(logits)[E // 2 - 1:E // 2 + 1].mean()
    bias0 = float(_last_dense(state.student)["bias"][0])
    for bias, expected in ((bias0 - split, "mixed"), (1e3, E), (-1e3, 0)):
        state = _with_safety_bias(state, bias)
        before, params = _host(state.env_state.obs), _copy(state.student)
        count = int(state.data.count.sum())
        state, metrics = safe.step(state)
        a_s, logit = (np.asarray(x) for x in safe.student.apply(params, before["pixels"]))
        query = logit >= 0  # the head before this iteration's update judges this step's observations
        if expected == "mixed":
            assert 0 < query.sum() < E, logit
        else:
            assert query.sum() == expected
        queries += int(query.sum())
        assert int(state.queries) == int(metrics["expert_queries"]) == queries
        assert int(state.data.count.sum()) == count + query.sum()
        # only the queried envs' observations, in env order, with the expert's labels
        a_e = linear_expert_action(before["proprio"])
        np.testing.assert_array_equal(state.data.obs[count:count + query.sum()], before["pixels"][query])
        np.testing.assert_allclose(state.data.label[count:count + query.sum()], a_e[query], atol=1e-6)
        # the expert acted exactly there, the student everywhere else
        acted = np.where(query[:, None], a_e, a_s)
        np.testing.assert_allclose(state.env_state.obs["proprio"], _moved(before["proprio"], acted), atol=1e-5)
        assert float(metrics["student_fraction"]) == 1.0 - query.mean()
        assert np.isfinite(float(metrics["safety_loss"])) and 0.0 <= float(metrics["batch_unsafe"]) <= 1.0


def test_query_fraction_sets_the_switch_from_the_held_out_quantile():
    # the switch of step k+1 is the (1 - f) quantile of the head's logits (parameters before step k's
    # update, clean pixels) on step k's held-out batch, redrawn here from the same keys; step k+1 then
    # queries exactly the environments whose logits reach it
    f = 0.3
    config = dataclasses.replace(TOY, safe=True, safety_query_fraction=f, learning_rate=1e-9, safety_holdout=3)
    p = _programs(config)
    state, _ = p.seed(p.fresh())
    assert float(state.safety_threshold) == 0.0  # before any gradient step: sigmoid >= 0.5
    differs = 0
    for _ in range(3):
        params, key = _copy(state.student), np.asarray(state.key)
        before = _host(state.env_state.obs)
        threshold = float(state.safety_threshold)
        queries = int(state.queries)
        state, metrics = p.step(state)
        logit = np.asarray(p.student.apply(params, before["pixels"])[1])
        assert int(state.queries) - queries == int((logit >= threshold).sum())
        differs += int((logit >= threshold).sum() != (logit >= 0).sum())
        k_held = jax.random.split(jax.random.fold_in(jax.random.split(key)[1], 0), 3)[2]
        held, _, _ = dataset.sample(state.data, k_held, config.batch_size, config.safety_holdout, held_out=True)
        expected = np.quantile(np.asarray(p.student.apply(params, held)[1]), 1.0 - f)
        np.testing.assert_allclose(float(state.safety_threshold), expected, rtol=1e-5, atol=1e-6)
        assert float(metrics["safety_threshold"]) == float(state.safety_threshold)
    assert differs  # the calibrated switch is not the default rule here (these keys: 0 of 8 queried, not 8)
    with pytest.raises(ValueError, match=r"DAggerConfig.safety_query_fraction=0.3 is not allowed: it needs safe=True"):
        dataclasses.replace(TOY, safety_query_fraction=0.3).validate()


@pytest.mark.parametrize("fraction", [None, 0.25])
def test_safety_head_learns_on_the_held_out_split_only(fraction):
    # labels equal the student's own actions on the training slots and are 0.1-1 away on the held-out
    # ones: the policy loss must be 0 (it never sees a held-out slot) and every safety target unsafe
    # with the fixed tau (it sees nothing else); with safety_unsafe_fraction, that fraction of them
    config = dataclasses.replace(TOY, safe=True, learning_rate=1e-9, safety_holdout=3, loss="squared",
                                 augment=StrongAugConfig(ops=("none",)), safety_unsafe_fraction=fraction)
    p = _programs(config)
    state, _ = p.seed(p.fresh())
    stored = int(state.data.count[0])
    own = np.asarray(p.student.policy(state.student, state.data.obs[:stored]))
    held = (np.arange(stored) % 3 == 0)[:, None]
    offset = np.linspace(0.1, 1.0, stored, dtype=np.float32)[:, None] * np.array([1.0, 0.0], np.float32)
    label = np.array(state.data.label)
    label[:stored] = own + held * offset
    data = state.data.replace(label=jax.device_put(jnp.asarray(label), state.data.label.sharding))
    state = _with_safety_bias(state.replace(data=data), -1e3)  # all safe: the step adds nothing before learning
    state, metrics = p.step(state)
    assert int(state.data.count[0]) == stored
    assert float(metrics["student_loss"]) < 1e-10
    if fraction is None:
        assert float(metrics["batch_unsafe"]) == 1.0 and float(metrics["safety_tau"]) == np.float32(config.safety_tau)
    else:  # 32 draws from 22 held-out slots: ties keep it near, not at, 25%
        assert 0.1 <= float(metrics["batch_unsafe"]) <= 0.3
        assert 0.1**2 <= float(metrics["safety_tau"]) <= 1.0


def test_data_modes_choose_who_rolls_out(toy):
    # expert-only: the expert keeps acting after the seeding; every env is labelled
    expert_only = _programs(dataclasses.replace(TOY, data="expert"))
    state, _ = expert_only.seed(expert_only.fresh())
    for i in range(2):
        before = _host(state.env_state.obs)
        state, metrics = expert_only.step(state)
        assert float(metrics["student_fraction"]) == 0.0 and int(state.queries) == (S + i + 1) * E
        assert np.isfinite(float(metrics["action_error"]))  # the student is still measured
        np.testing.assert_allclose(state.env_state.obs["proprio"],
                                   _moved(before["proprio"], linear_expert_action(before["proprio"])), atol=1e-5)

    # student-only: the (untrained) student rolls out from the start; the expert still labels
    student_only = _programs(dataclasses.replace(TOY, data="student"), step=False)
    state = student_only.fresh()
    params, replay = _copy(state.student), _copy(state.env_state)  # (the seeding donates the state)
    seeded, metrics = student_only.seed(state)
    assert int(seeded.queries) == int(metrics["dataset_size"]) == S * E
    step = _env_step(student_only.env)
    for t in range(S):
        p = np.asarray(replay.obs["proprio"])
        np.testing.assert_allclose(seeded.data.label[t * E:(t + 1) * E], linear_expert_action(p), atol=1e-5)
        replay = step(replay, student_only.student.policy(params, replay.obs["pixels"]))
    np.testing.assert_allclose(seeded.env_state.obs["proprio"], replay.obs["proprio"], atol=1e-4)

    # SafeDAgger seeded by the student (the benchmark's, session 41): the seeding ignores the head, the
    # student acts and the expert labels every seeded observation, as above
    safe_student = _programs(dataclasses.replace(TOY, data="student", safe=True), step=False)
    safe_seeded, safe_metrics = safe_student.seed(safe_student.fresh())
    assert int(safe_seeded.queries) == int(safe_metrics["dataset_size"]) == S * E
    np.testing.assert_allclose(safe_seeded.data.label[:S * E], seeded.data.label[:S * E], atol=1e-6)
    np.testing.assert_allclose(safe_seeded.env_state.obs["proprio"], seeded.env_state.obs["proprio"], atol=1e-6)

    # dagger's seeding (the expert's) ends elsewhere: it drives every env towards the origin
    dagger_seeded, _ = toy.seed(toy.fresh())
    assert np.abs(dagger_seeded.env_state.obs["proprio"]).max() < 0.05
    assert np.abs(seeded.env_state.obs["proprio"]).max() > 0.5


def _executed(before, after):
    """The toy's executed actions ``(after - before) / SPEED`` and where they are exact: neither
    the position nor the action clipped."""
    a = (after - before) / SPEED
    return a, (np.abs(after) < 0.999) & (np.abs(a) < 0.999)


def test_rollout_noise_perturbs_the_executed_actions_not_the_labels(toy):
    sigma = 0.1
    noisy = _programs(dataclasses.replace(TOY, rollout_noise=sigma))
    state = noisy.fresh()
    clean, _ = toy.seed(toy.fresh())  # the same start, seeded without noise
    state, _ = noisy.seed(state)
    drift = np.abs(np.asarray(state.env_state.obs["proprio"]) - np.asarray(clean.env_state.obs["proprio"]))
    assert drift.max() > 0.01  # the expert's seeding rollout is perturbed too
    residuals, n = [], S * E
    for _ in range(6):
        before, params = _host(state.env_state.obs), _copy(state.student)
        state, _ = noisy.step(state)
        n += E
        # stored: the observation the student acted on, labelled by the expert's clean action on it
        np.testing.assert_array_equal(state.data.obs[n - E:n], before["pixels"])
        np.testing.assert_allclose(state.data.label[n - E:n], linear_expert_action(before["proprio"]), atol=1e-6)
        a_s = np.asarray(noisy.student.policy(params, before["pixels"]))
        executed, exact = _executed(before["proprio"], np.asarray(state.env_state.obs["proprio"]))
        exact &= np.abs(a_s) < 1 - 4 * sigma  # (a clipped draw would bias the spread)
        residuals.append((executed - a_s)[exact])
    r = np.concatenate(residuals)  # executed - intended: N(0, sigma^2), a fresh draw per env, dimension and step
    assert r.size >= 40
    assert abs(r.mean()) < 4 * sigma / np.sqrt(r.size)
    assert 0.7 * sigma < r.std() < 1.3 * sigma
    assert len(np.unique(np.round(r, 6))) == r.size


def _ppo_pendulum_expert():
    from vasa.algos import ppo
    from vasa.nn import RunningStats

    config = ppo.PPOConfig(env="toy/pendulum", num_envs=8, action_repeat=None)
    env = ppo.make_env(config)
    params = jax.jit(ppo.Networks(config, 3, env.action_spec).init)(jax.random.PRNGKey(0))
    return experts.expert_from_ppo(config, {"policy": params["policy"], "normalizer": RunningStats.create(3)}, env=env)


def test_mismatched_experts_fail_before_compiling(tmp_path, compiles):
    env = dagger.make_env(TOY)
    ppo_expert = _ppo_pendulum_expert()
    obs = {"pixels": jnp.zeros((4, 16, 16, 6), jnp.uint8), "proprio": jnp.zeros((4, 3))}
    assert jax.jit(ppo_expert.act)(ppo_expert.params, obs).shape == (4, 1)
    linear = experts.reach2d_expert()
    cases = [
        (ppo_expert, ["trained on toy/pendulum but the student learns toy/reach2d",
                      "acts with action_size=1 but toy/reach2d has 2", "reads obs['proprio'] of shape (3,) but "
                      "toy/reach2d gives (2,)"]),
        (experts.reach2d_expert(action_repeat=4), ["trained with action_repeat=4 but the student's toy/reach2d "
                                                   "repeats each action 1 times"]),
        (dataclasses.replace(linear, reads="pixels", obs_shape=(84, 84, 9), appearance="color_hard"),
         ["reads obs['pixels'] of shape (84, 84, 9) but toy/reach2d gives (16, 16, 6)", "appearance='color_hard'"]),
    ]
    before = compiles[0]
    for expert, messages in cases:
        with pytest.raises(ValueError) as e:
            experts.check_expert(expert, TOY.env, env, TOY.resolved_action_repeat())
        for m in messages:
            assert m in str(e.value), (m, str(e.value))
        with pytest.raises(ValueError, match="does not fit"):
            dagger.train(TOY, expert, RunConfig(run_dir=str(tmp_path / "run"), **QUIET))
    assert compiles[0] == before, "a mismatched expert was compiled"
    assert not (tmp_path / "run").exists(), "a refused run must not create its run directory"


def test_sac_adapters_read_the_right_observation():
    from vasa.algos import offpolicy, sac

    config = sac.SACConfig(env="toy/reach2d", action_repeat=2, hidden_layers=(16,))
    params = jax.jit(sac.SACLearner(config, offpolicy.make_env(config)).init)(jax.random.PRNGKey(0))
    expert = experts.expert_from_sac(config, params)
    assert (expert.reads, expert.obs_shape, expert.action_repeat) == ("proprio", (2,), 2)
    obs = {"pixels": jnp.zeros((3, 16, 16, 6), jnp.uint8), "proprio": jnp.full((3, 2), 0.5)}
    action = jax.jit(expert.act)(expert.params, obs)
    assert action.shape == (3, 2) and np.all(np.abs(action) <= 1)
    with pytest.raises(ValueError, match="action_repeat=2"):
        experts.check_expert(expert, TOY.env, dagger.make_env(TOY), 1)


@pytest.mark.parametrize("change,message", [
    (dict(safe=True, data="expert"), "DAggerConfig.safe=True is not allowed: with data='expert'"),
    (dict(image_size=8), "DAggerConfig.image_size=8 is not allowed: image size 8x8 is too small"),
    (dict(dataset_size=4), "DAggerConfig.dataset_size=4 is not allowed"),
    (dict(data="mixed"), "DAggerConfig.data='mixed' is not allowed: it must be one of dagger, expert, student"),
    (dict(augment=StrongAugConfig(ops=())), "DAggerConfig.augment.ops=() is not allowed"),
    (dict(lr_schedule="step"), "DAggerConfig.lr_schedule='step' is not allowed: it must be one of constant, linear"),
    (dict(priority_exponent=1.5), "DAggerConfig.priority_exponent=1.5 is not allowed"),
    (dict(rollout_noise=-0.1), "DAggerConfig.rollout_noise=-0.1 is not allowed"),
    (dict(rollout_noise=float("nan")), "DAggerConfig.rollout_noise=nan is not allowed"),
    (dict(supersample=0), "DAggerConfig.supersample=0 is not allowed"),
])
def test_config_errors_name_the_field(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(TOY, **change).validate()


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_student_learning_rate_follows_the_schedule(kind):
    # Adam's step on a constant gradient is lr_t * 1 / (1 + eps): the parameter's path is minus
    # the running sum of the schedule, checked against the schedule's formula in NumPy
    n, lr = 10, 0.01
    tx = dagger._optimizer(dataclasses.replace(TOY, lr_schedule=kind, learning_rate=lr, student_steps=n))
    params = jnp.zeros(())
    opt, path = tx.init(params), []
    for _ in range(n + 2):
        updates, opt = tx.update(jnp.ones(()), opt, params)
        params = params + updates
        path.append(float(params))
    t = np.minimum(np.arange(n + 2), n)
    rate = {"constant": np.full(n + 2, lr), "linear": lr * (1 - t / n),
            "cosine": lr * (1 + np.cos(np.pi * t / n)) / 2}[kind]
    np.testing.assert_allclose(path, -np.cumsum(rate) / (1 + 1e-8), rtol=1e-5, atol=1e-9)


def _leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_continues_bit_for_bit(tmp_path, toy):
    # uninterrupted reference: the seeding and six single iterations (what train runs on a CPU)
    whole, _ = toy.seed(toy.fresh())
    for _ in range(6):
        whole, _ = toy.step(whole)
    config = dataclasses.replace(TOY, student_steps=6)
    expert = experts.reach2d_expert()
    _, stopped, rows = dagger.train(config, expert, RunConfig(run_dir=str(tmp_path), eval_every=3,
                                                              checkpoint_every=0, max_iterations=4, **QUIET))
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4] and int(stopped.iteration) == 4
    assert rows[-1]["expert_queries"] == rows[-1]["dataset_size"] == (S + 4) * E
    assert rows[-1]["env_steps"] == (S + 4) * E and np.isfinite(rows[2]["eval_return"])
    _, resumed, rows = dagger.train(config, expert, RunConfig(resume=str(tmp_path), **QUIET))
    assert [r["iteration"] for r in rows] == [5, 6] and np.isfinite(rows[-1]["eval_return"])
    _leaves_equal(whole, resumed)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"student_loss", "expert_queries", "dataset_size", "student_fraction", "eval_return"} <= set(header)


MESH = """
import dataclasses, jax, numpy as np
from vasa.dist import make_mesh
from vasa.distill import dagger, experts
from vasa.distill.augment import StrongAugConfig
config = dagger.DAggerConfig(env="toy/reach2d", image_size=16, frame_stack=2, action_repeat=1, num_envs=8, expert_steps=4,
                             dataset_size=64, batch_size=16, hidden_layers=(32,), safety_layers=(8,), feature_dim=16,
                             augment=StrongAugConfig(ops=("none",)), safe=True, safety_tau=0.01)
expert, mesh = experts.reach2d_expert(), make_mesh(2)
state = dagger.init(config, expert, mesh=mesh)
state, _ = dagger.make_seed(config, expert, mesh=mesh)(state)
step = dagger.make_train_step(config, expert, mesh=mesh, chunk=3)
state, metrics = step(state, 3)
assert state.data.obs.addressable_shards[0].data.shape == (32, 16, 16, 6)  # each device its own ring
counts = np.asarray(state.data.count)
assert counts.sum() == int(state.queries) == int(metrics["expert_queries"][-1]) == int(metrics["dataset_size"][-1])
assert counts.min() >= 4 * 4  # each device seeded its 4 envs for 4 steps
for leaf in jax.tree.leaves(state.student):  # gradients averaged: identical replicas
    shards = [np.asarray(s.data) for s in leaf.addressable_shards]
    assert all(np.array_equal(shards[0], s) for s in shards[1:])
print("OK", int(state.queries))
"""


@pytest.mark.slow
def test_two_devices_split_envs_and_dataset(run_python):
    assert "OK" in run_python(MESH, devices=2)
