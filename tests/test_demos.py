"""Recorded demonstrations and SURREAL's demonstration curriculum (issue 19, part 6).

References are independent of the code under test: the recording itself (a restored state must
show the observation recorded with it, and stepping it with the recorded action the next one),
hand-written expectations of robosuite's window schedule, and chi-square / binomial bounds on
the start-state draws. The schedule and the wrapper plumbing are tested on a tiny pure-JAX task
whose observation names the demonstration state it was restored from (no MJX compile); the
physics on one shared ``robo/lift`` recording (4 envs x 40 steps).
"""

from __future__ import annotations

import dataclasses
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.envs import EnvState, make, make_raw
from vasa.envs.core import ArraySpec
from vasa.envs.curriculum import (
    DemoCurriculum,
    DemoProgress,
    sample_start,
    window_width,
)
from vasa.envs.demos import Demos, record
from vasa.envs.tasks.manipulation import scripted
from vasa.envs.wrappers import AutoReset, EpisodeLimit


def chi2_bound(df: int, z: float = 3.29) -> float:
    """Upper ``1 - 5e-4`` quantile of chi-square(df) (Wilson-Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * np.sqrt(2 / (9 * df))) ** 3


def chi2(counts, expected) -> float:
    counts, expected = np.asarray(counts, float), np.asarray(expected, float)
    return float(((counts - expected) ** 2 / expected).sum())


# --------------------------------------------------------------------------- a tiny task
class Toy:
    """Pure-JAX stand-in for a robo task: its physics is ``qpos [2]``; ``obs = (qpos, p)`` with
    ``p`` the episode's task parameter, so an observation names the demonstration state it came
    from. Task resets put ``qpos = (-1, -1)``."""

    default_episode_length = 1000
    default_action_repeat = 1
    observation_spec = ArraySpec((3,), jnp.float32)
    action_spec = ArraySpec((1,), jnp.float32, low=-jnp.ones(1), high=jnp.ones(1))

    def _state(self, qpos, p):
        zero = jnp.zeros((), jnp.float32)
        return EnvState(physics=qpos, obs=jnp.concatenate([qpos, p[None]]), reward=zero, done=zero, truncation=zero,
                        info={"object": {"p": p}}, metrics={"success": zero})

    def reset(self, key):
        return self._state(-jnp.ones(2, jnp.float32), jax.random.uniform(key, (), minval=100.0, maxval=101.0))

    def step(self, state, action):
        return state.replace(reward=action[0], done=jnp.zeros((), jnp.float32))

    def state_from(self, qpos, qvel, ctrl, params, act=None, qacc_warmstart=None):
        return self._state(qpos, params["p"])


def toy_demos(episodes: int = 5, length: int = 40, env_id: str = "toy/demo") -> Demos:
    e, t = np.meshgrid(np.arange(episodes), np.arange(length), indexing="ij")
    qpos = np.stack([e, t], -1).astype(np.float32)
    p = (10.0 + np.arange(episodes)).astype(np.float32)
    zeros = lambda n: np.zeros((episodes, length, n), np.float32)
    success = np.zeros((episodes, length), np.float32)
    success[:, -1] = 1.0  # the last action succeeds: the whole recording is the demonstration
    return Demos(obs=np.concatenate([qpos, np.broadcast_to(p[:, None, None], (episodes, length, 1))], -1),
                 action=zeros(1), reward=np.zeros((episodes, length), np.float32), success=success,
                 qpos=qpos, qvel=zeros(1), act=zeros(0), ctrl=zeros(1), qacc_warmstart=zeros(1),
                 params={"p": p}, env_id=env_id, control="none", dt=0.05)


# --------------------------------------------------------------------------- schedule
def test_uniform_starts_are_uniform_over_all_states():
    E, T, n = 5, 40, 40_000
    e, t = jax.jit(jax.vmap(lambda k: sample_start(k, 0, E, T, "uniform")))(jax.random.split(jax.random.PRNGKey(0), n))
    flat = np.asarray(e) * T + np.asarray(t)
    counts = np.bincount(flat, minlength=E * T)
    assert counts.size == E * T  # no index outside the demonstrations
    assert chi2(counts, n / (E * T)) < chi2_bound(E * T - 1)
    # the test can fail: a skewed draw (first half of each episode twice as likely) is caught
    skew = np.where(np.arange(E * T) % T < T // 2, 2.0, 1.0)
    assert chi2(counts, n * skew / skew.sum()) > chi2_bound(E * T - 1)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_forward_reverse_window_follows_robosuite_schedule(mode):
    T, n = 120, 6_000
    # robosuite's DemoSamplerWrapper defaults: width 25, +25 every 100 demonstration starts, capped at T
    expected_width = {0: 25, 99: 25, 100: 50, 250: 75, 399: 100, 400: 120, 10_000: 120}
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    draw = jax.jit(jax.vmap(lambda k, c: sample_start(k, c, 3, T, mode), (0, None)))
    for count, width in expected_width.items():
        assert int(window_width(count, T)) == width
        e, t = (np.asarray(x) for x in draw(keys, jnp.int32(count)))
        window = np.arange(width) if mode == "forward" else np.arange(T - width, T)
        counts = np.bincount(t, minlength=T)
        assert counts[np.setdiff1d(np.arange(T), window)].sum() == 0, (count, t.min(), t.max())
        assert chi2(counts[window], n / width) < chi2_bound(max(width - 1, 1)), count
        assert chi2(np.bincount(e, minlength=3), n / 3) < chi2_bound(2)


def test_steps_to_success_counts_states_up_to_the_first_success():
    demos = toy_demos(episodes=4, length=10)
    success = np.zeros((4, 10), np.float32)
    success[0, 3] = success[0, 7] = 1.0  # first success after the action at state 3: states 0..3
    success[1, 0] = 1.0  # the first action succeeds: state 0 only
    success[2, 9] = 1.0  # at the end: all 10 states
    # episode 3 never succeeds: all 10 states
    demos = dataclasses.replace(demos, success=success)
    np.testing.assert_array_equal(demos.steps_to_success(), [4, 1, 10, 10])
    assert demos.steps_to_success().dtype == np.int32


@pytest.mark.parametrize("mode", ["uniform", "forward", "reverse"])
def test_starts_stay_within_each_demonstrations_own_length(mode):
    """Per-episode lengths ``L_e``: the episode is uniform, ``t`` uniform in ``[0, L_e)``
    (uniform), ``[0, min(W, L_e))`` (forward) or ``[L_e - min(W, L_e), L_e)`` (reverse)."""
    lengths = np.array([3, 40, 120, 60], np.int32)
    n, count = 24_000, 100  # window W = 50 (robosuite's schedule after 100 starts)
    keys = jax.random.split(jax.random.PRNGKey(4), n)
    e, t = (np.asarray(x) for x in jax.jit(jax.vmap(
        lambda k: sample_start(k, count, 4, jnp.asarray(lengths), mode)))(keys))
    assert chi2(np.bincount(e, minlength=4), n / 4) < chi2_bound(3)
    for ep, length in enumerate(lengths):
        w = length if mode == "uniform" else min(50, length)
        allowed = np.arange(w) if mode != "reverse" else np.arange(length - w, length)
        counts = np.bincount(t[e == ep], minlength=130)
        assert counts[np.setdiff1d(np.arange(130), allowed)].sum() == 0, (mode, ep)
        assert chi2(counts[allowed], (e == ep).sum() / w) < chi2_bound(max(w - 1, 1)), (mode, ep)


def test_curriculum_starts_before_each_demonstrations_first_success():
    demos = toy_demos(episodes=3, length=40)
    success = np.zeros((3, 40), np.float32)
    success[0, 4], success[1, 19], success[2, 39] = 1.0, 1.0, 1.0
    demos = dataclasses.replace(demos, success=success)
    keys = jax.random.split(jax.random.PRNGKey(5), 3_000)
    for until, limit in ((True, [5, 20, 40]), (False, [40, 40, 40])):
        env = DemoCurriculum(Toy(), demos, 1.0, "uniform", env_id="toy/demo", until_success=until)
        s = jax.jit(jax.vmap(env.reset))(keys)
        ep, t = np.asarray(s.info["demo"]["episode"]), np.asarray(s.info["demo"]["t"])
        for k in range(3):
            assert t[ep == k].max() == limit[k] - 1 and t[ep == k].min() == 0, (until, k)
        np.testing.assert_array_equal(np.asarray(s.obs)[:, :2], np.stack([ep, t], -1))  # that state restored
    with pytest.raises(ValueError, match="demo_until_success='yes' is not allowed"):
        DemoCurriculum(Toy(), demos, 1.0, "uniform", env_id="toy/demo", until_success="yes")


def toy_env(ratio, mode, **schedule):
    task = Toy()
    return task, DemoCurriculum(task, toy_demos(), ratio, mode, env_id="toy/demo", **schedule)


def test_demo_resets_follow_ratio_and_restore_the_chosen_state():
    _, env = toy_env(0.3, "uniform")
    n = 4_000
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(2), n))
    used = np.asarray(s.info["demo"]["used"]) > 0
    frac = used.mean()
    assert abs(frac - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n), frac
    obs, ep, t = np.asarray(s.obs), np.asarray(s.info["demo"]["episode"]), np.asarray(s.info["demo"]["t"])
    demos = toy_demos()
    np.testing.assert_array_equal(obs[used], demos.obs[ep[used], t[used]])  # the recorded observation
    assert (obs[~used, :2] == -1).all() and (obs[~used, 2] >= 100).all() and (ep[~used] == -1).all()
    assert chi2(np.bincount(ep[used], minlength=5), used.sum() / 5) < chi2_bound(4)
    for ratio, want in ((0.0, False), (1.0, True)):
        _, env = toy_env(ratio, "uniform")
        s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(3), 64))
        assert (np.asarray(s.info["demo"]["used"]) > 0).tolist() == [want] * 64


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_window_moves_with_each_envs_count_of_demo_starts(mode):
    """One-step episodes under AutoReset: every step starts a new episode from the demos, so the
    count after ``k`` steps is ``k + 1`` (the first reset counts) and each start lies in the
    window of the count before it: ``W(n) = min(T, 2 + 3 (n // 2))`` (hand-set schedule)."""
    _, cur = toy_env(1.0, mode, window=2, increment=3, increment_every=2)
    env = DemoProgress(AutoReset(EpisodeLimit(cur, 1)), cur)
    T, n_env, steps = 40, 64, 30

    def run(key):
        state = jax.vmap(env.reset)(jax.random.split(key, n_env))

        def body(s, _):
            nxt = jax.vmap(env.step)(s, jnp.zeros((n_env, 1)))
            return nxt, (s.info["demo_resets"], nxt.info["demo"]["t"], nxt.obs)

        return state, jax.lax.scan(body, state, None, length=steps)[1]

    state, (before, t, obs) = jax.jit(run)(jax.random.PRNGKey(4))
    before, t, obs = np.asarray(before), np.asarray(t), np.asarray(obs)
    assert (np.asarray(state.info["demo_resets"]) == 1).all()
    np.testing.assert_array_equal(before, np.broadcast_to(np.arange(1, steps + 1)[:, None], before.shape))
    width = np.minimum(T, 2 + 3 * (before // 2))
    inside = (t < width) if mode == "forward" else (t >= T - width)
    assert inside.all()
    assert (obs[..., 1] == t).all()  # the observation is the chosen demonstration step's
    # and the window does grow: late starts reach steps the first window never could
    late = t[-5:]
    assert (late >= 2).any() if mode == "forward" else (late < T - 2).any()


def _run_clocked(cur, n_env, steps, key):
    """Roll ``n_env`` toy environments of 3-step episodes under the curriculum ``cur`` for
    ``steps`` steps: ``(first state, done [steps, n_env] bool, used [steps, n_env] bool, clock
    [steps, n_env] int32)``, ``used`` saying whether the episode running after each step began
    from a demonstration."""
    env = DemoProgress(AutoReset(EpisodeLimit(cur, 3)), cur)

    def run(key):
        state = jax.vmap(env.reset)(jax.random.split(key, n_env))

        def body(s, _):
            nxt = jax.vmap(env.step)(s, jnp.zeros((n_env, 1)))
            return nxt, (nxt.done, nxt.info["demo"]["used"], nxt.info["demo_clock"])

        return state, jax.lax.scan(body, state, None, length=steps)[1]

    state, (done, used, clock) = jax.jit(run)(key)
    return state, np.asarray(done) > 0, np.asarray(used) > 0, np.asarray(clock)


def test_warmup_delays_demo_starts_then_follows_the_ratio():
    """Episodes of 3 steps under AutoReset, warm-up 10 steps per environment: the auto-resets
    after steps 3, 6 and 9 are the task's own (clock 3, 6, 9 < 10), those after step 12 on
    start from demonstrations with probability ``ratio`` (binomial bound); the clock saturates
    at the warm-up, and without a warm-up the state carries no clock."""
    _, cur = toy_env(0.4, "uniform", warmup=10)
    steps = 36
    state, done, used, clock = _run_clocked(cur, 512, steps, jax.random.PRNGKey(5))
    assert not (np.asarray(state.info["demo"]["used"]) > 0).any()  # the first reset: clock 0
    np.testing.assert_array_equal(clock[:, 0], np.minimum(np.arange(1, steps + 1), 10))
    resets = np.flatnonzero(done[:, 0]) + 1  # step numbers after which an episode began
    np.testing.assert_array_equal(resets, np.arange(3, steps + 1, 3))
    early, late = used[resets[resets < 10] - 1], used[resets[resets >= 10] - 1]
    assert not early.any()
    frac, n = late.mean(), late.size
    assert abs(frac - 0.4) < 4 * np.sqrt(0.4 * 0.6 / n), frac
    _, plain = toy_env(0.4, "uniform")
    assert "demo_clock" not in jax.eval_shape(DemoProgress(AutoReset(plain), plain).reset, jax.random.PRNGKey(0)).info
    with pytest.raises(ValueError, match=r"demo_warmup=-1 .*>= 0"):
        toy_env(0.4, "uniform", warmup=-1)
    with pytest.raises(ValueError, match="auto_reset=False is not allowed with demo_warmup=5"):
        make("robo/lift", demos=toy_demos(env_id="robo/lift"), demo_warmup=5, auto_reset=False)


def test_anneal_lowers_the_ratio_linearly_to_zero_after_the_warmup():
    """Warm-up 6, annealing 30 steps per environment, episodes of 3 steps: the fraction of
    demonstration starts among the auto-resets after each step ``c`` follows
    ``ratio * clip(1 - (c - 6) / 30, 0, 1)`` (0 before the warm-up; binomial bound per step over
    2,048 environments), the clock saturates at 36 and every later start is the task's own."""
    ratio, warm, anneal = 0.8, 6, 30
    _, cur = toy_env(ratio, "uniform", warmup=warm, anneal=anneal)
    n_env, steps = 2048, 45
    _, _, used, clock = _run_clocked(cur, n_env, steps, jax.random.PRNGKey(7))
    np.testing.assert_array_equal(clock[:, 0], np.minimum(np.arange(1, steps + 1), warm + anneal))
    for c in range(3, steps + 1, 3):  # the auto-reset after step c (clock c)
        want = ratio * np.clip(1 - (c - warm) / anneal, 0, 1) if c >= warm else 0.0
        frac = used[c - 1].mean()
        assert abs(frac - want) <= 4.5 * np.sqrt(max(want * (1 - want), 1e-9) / n_env), (c, frac, want)
    np.testing.assert_allclose(np.asarray(jax.vmap(cur.ratio_at)(jnp.arange(0, 50))),
                               [0.0 if c < warm else ratio * np.clip(1 - (c - warm) / anneal, 0, 1) for c in range(50)],
                               rtol=1e-6, atol=1e-7)
    _, plain = toy_env(0.5, "uniform", anneal=10)  # annealing alone carries a clock too, saturating at 10
    state = jax.eval_shape(DemoProgress(AutoReset(plain), plain).reset, jax.random.PRNGKey(0))
    assert "demo_clock" in state.info and plain.clock_limit == 10
    with pytest.raises(ValueError, match=r"demo_anneal=-2 .*>= 0"):
        toy_env(0.4, "uniform", anneal=-2)
    with pytest.raises(ValueError, match="auto_reset=False is not allowed with demo_anneal=5"):
        make("robo/lift", demos=toy_demos(env_id="robo/lift"), demo_anneal=5, auto_reset=False)


class ToyHit(Toy):
    """:class:`Toy` whose step succeeds (``metrics["success"] = 1``) when its action is positive."""

    def step(self, state, action):
        nxt = super().step(state, action)
        return nxt.replace(metrics={"success": (action[0] > 0).astype(jnp.float32)})


def test_window_grows_only_when_the_slot_masters_it():
    """Growth by success, against a hand-worked tally: reverse window 2, +3 steps per block of 2
    episodes begun at the frontier that has >= 1 success (``grow_at = 0.5``), 2-step episodes,
    every start from the demonstrations (T = 40). Environment 0 succeeds in every episode, 1 in
    none, 2 in the first step of every other episode, 3 in the last step of every fourth; the tally
    replays each environment's episodes in plain Python, counting those that began at the frontier
    (recorded by the wrapper: about half of them, drawn from the window's oldest 3 steps)."""
    task = ToyHit()
    cur = DemoCurriculum(task, toy_demos(), 1.0, "reverse", env_id="toy/demo", window=2, increment=3,
                         increment_every=2, grow_at=0.5)
    env = DemoProgress(AutoReset(EpisodeLimit(cur, 2)), cur)
    n_env, steps, T = 64, 80, 40
    episode = np.arange(steps) // 2
    first = np.arange(steps) % 2 == 0
    pattern = np.stack([np.ones(steps, bool), np.zeros(steps, bool), (episode % 2 == 0) & first,
                        (episode % 4 == 0) & ~first], axis=1)  # [steps, 4]
    hit = np.tile(pattern, (1, n_env // 4))  # [steps, n_env]
    actions = jnp.asarray(np.where(hit, 1.0, -1.0)[..., None], jnp.float32)

    def run(key):
        state = jax.vmap(env.reset)(jax.random.split(key, n_env))

        def body(s, a):
            nxt = jax.vmap(env.step)(s, a)
            return nxt, (s.info["demo_width"], s.info["demo"]["frontier"], nxt.info["demo_width"],
                         nxt.info["demo"]["t"], nxt.info["demo"]["frontier"], nxt.done)

        return state, jax.lax.scan(body, state, actions)[1]

    state, out = jax.jit(run)(jax.random.PRNGKey(3))
    before, frontier, after, t, new_frontier, done = (np.asarray(x) for x in out)
    assert (np.asarray(state.info["demo_width"]) == 2).all()
    want = np.zeros((steps, n_env), int)
    for e in range(n_env):
        width, block, hits, ep_hit = 2, 0, 0, False
        for k in range(steps):
            ep_hit |= bool(hit[k, e])
            if k % 2 == 1:  # the episode ends
                if frontier[k, e] > 0:
                    block, hits = block + 1, hits + ep_hit
                ep_hit = False
                if block == 2:
                    width = min(width + 3, T) if hits >= 1 else width
                    block, hits = 0, 0
            want[k, e] = width
    np.testing.assert_array_equal(after, want)
    last = want[-1].reshape(-1, 4)
    assert (last[:, 1] == 2).all() and (last[:, 0] > 20).all()  # never grows without success; mastered grows
    assert last[:, 3].mean() < last[:, 2].mean() < last[:, 0].mean()  # rarer successes grow it more slowly
    assert (done[1::2] > 0).all() and not (done[0::2] > 0).any()
    # each new episode starts inside the window its slot had when the step began; about half at its frontier
    new = done > 0
    assert (t[new] >= T - before[new]).all() and (t[new] < T).all()
    share = new_frontier[new].mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / new.sum()), share
    front = new & (new_frontier > 0)
    assert (t[front] < T - np.maximum(before[front] - 3, 0)).all()  # the window's oldest 3 steps
    assert (t[new][(before[new] > 2)] < T - 2).any()  # and the grown window is used
    # capped at the longest demonstration, and only for forward/reverse with a success metric
    assert cur.max_width == T
    _, plain = toy_env(0.5, "reverse")
    assert "demo_width" not in jax.eval_shape(DemoProgress(AutoReset(plain), plain).reset, jax.random.PRNGKey(0)).info
    with pytest.raises(ValueError, match="demo_grow_at=0.5 is not allowed with demo_curriculum='uniform'"):
        toy_env(0.5, "uniform", grow_at=0.5)
    with pytest.raises(ValueError, match=r"demo_grow_at=1.5 .*\[0\.0, 1\.0\]"):
        toy_env(0.5, "reverse", grow_at=1.5)

    class NoSuccess(Toy):
        def _state(self, qpos, p):
            return super()._state(qpos, p).replace(metrics={})

    quiet = DemoCurriculum(NoSuccess(), toy_demos(), 0.5, "reverse", env_id="toy/demo", grow_at=0.5)
    with pytest.raises(ValueError, match="demo_grow_at=0.5 is not allowed for NoSuccess: .*metrics\\['success'\\]"):
        DemoProgress(AutoReset(quiet), quiet)


def test_bad_curriculum_arguments_name_what_differs():
    task, demos = Toy(), toy_demos()
    with pytest.raises(ValueError, match=r"demo_ratio=1\.5 .*\[0\.0, 1\.0\]"):
        DemoCurriculum(task, demos, 1.5)
    with pytest.raises(ValueError, match="demo_curriculum='sideways'.*uniform"):
        DemoCurriculum(task, demos, 0.5, "sideways")
    with pytest.raises(ValueError, match="env_id='toy/demo', not 'robo/lift'"):
        DemoCurriculum(task, demos, 0.5, env_id="robo/lift")
    wide = Demos(**{**_fields(demos), "obs": np.zeros((5, 40, 4), np.float32)})
    with pytest.raises(ValueError, match="observations of size 4, the environment \\(3,\\)"):
        DemoCurriculum(task, wide, 0.5)
    other = Demos(**{**_fields(demos), "params": {"q": demos.params["p"]}})
    with pytest.raises(ValueError, match=r"task parameters \['q'\], the environment \['p'\]"):
        DemoCurriculum(task, other, 0.5)
    with pytest.raises(ValueError, match="reset_mode='cached' is not allowed with demos"):
        make("robo/lift", demos=demos, reset_mode="cached")
    with pytest.raises(ValueError, match="auto_reset=False is not allowed with demo_curriculum='reverse'"):
        make("robo/lift", demos=demos, demo_curriculum="reverse", auto_reset=False)
    with pytest.raises(ValueError, match="env_id='toy/demo', not 'robo/lift'"):
        make("robo/lift", demos=demos)


def _fields(demos: Demos) -> dict:
    import dataclasses

    return {f.name: getattr(demos, f.name) for f in dataclasses.fields(demos)}


# --------------------------------------------------------------------------- robo/lift recording
@pytest.fixture(scope="module")
def lift():
    task = make_raw("robo/lift")
    demos = record(task, scripted.lift_policy, jax.random.PRNGKey(11), 4, 40, successful_only=False, env_id="robo/lift")
    return task, demos


def test_save_load_round_trip_and_refusals(lift, tmp_path):
    _, demos = lift
    assert demos.obs.shape == (4, 40, 42) and demos.action.shape == (4, 40, 7) and demos.qpos.shape == (4, 40, 16)
    assert demos.env_id == "robo/lift" and demos.control == "osc_pose" and demos.dt == pytest.approx(0.05)
    path = demos.save(tmp_path / "lift")
    assert path.endswith("lift.npz")
    back = Demos.load(path, env_id="robo/lift")
    for name in ("obs", "action", "reward", "success", "qpos", "qvel", "act", "ctrl", "qacc_warmstart"):
        a, b = getattr(demos, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    assert sorted(back.params) == ["friction", "half_size", "mass"]
    for k, v in demos.params.items():
        assert v.tobytes() == back.params[k].tobytes()
    assert (back.env_id, back.control, back.dt, back.vasa_version, back.num_dropped) == (
        demos.env_id, demos.control, demos.dt, demos.vasa_version, demos.num_dropped)

    with open(path, "rb") as f:
        before = f.read()
    with pytest.raises(FileExistsError, match="not overwritten unless overwrite=True"):
        demos.select([0]).save(path)
    with open(path, "rb") as f:
        assert f.read() == before
    demos.select([0, 1]).save(path, overwrite=True)
    assert Demos.load(path).num_episodes == 2

    with pytest.raises(ValueError, match="env_id='robo/lift', not 'robo/door'"):
        Demos.load(path, env_id="robo/door")
    with pytest.raises(FileNotFoundError):
        Demos.load(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive at all")
    with pytest.raises(ValueError, match="not a readable demonstrations .npz"):
        Demos.load(junk)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in arrays.items() if k != "qvel"})
    with pytest.raises(ValueError, match="missing qvel"):
        Demos.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "short.npz", **{**arrays, "ctrl": arrays["ctrl"][:1]})
    with pytest.raises(ValueError, match=r"Demos.ctrl has shape \(1, 40, 9\)"):
        Demos.load(tmp_path / "short.npz")
    np.savez(tmp_path / "pickled.npz", **{**arrays, "obs": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="not a readable demonstrations .npz"):
        Demos.load(tmp_path / "pickled.npz")  # never unpickled


def test_successful_only_drops_episodes_that_never_succeed(lift):
    task, everything = lift
    ok = everything.success.max(axis=1) > 0
    assert 0 < ok.sum() < 4  # 40 steps: some scripted lifts succeed, some not yet (a real test of the filter)
    kept = everything.successful()  # what record(..., successful_only=True) returns
    assert kept.num_episodes == ok.sum() and kept.num_dropped == (~ok).sum()
    np.testing.assert_array_equal(kept.obs, everything.obs[ok])
    np.testing.assert_array_equal(kept.params["mass"], everything.params["mass"][ok])
    with pytest.raises(ValueError, match="env_id=None is not allowed"):
        record(task, scripted.lift_policy, jax.random.PRNGKey(0), 2, 3)
    with pytest.raises(ValueError, match="num_episodes=0 is not allowed"):
        record("robo/lift", scripted.lift_policy, jax.random.PRNGKey(0), 0, 3)
    with pytest.raises(ValueError, match="toy/pendulum cannot be recorded: .* no qpos"):
        record("toy/pendulum", lambda obs: jnp.zeros(1), jax.random.PRNGKey(0), 2, 3)


def quat_close(a, b, atol):
    """Quaternions equal up to sign (``q`` and ``-q`` are one rotation)."""
    return np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)) <= atol


def _restore(task, d, steps: slice = slice(None)):
    """Every recorded state of ``d`` at ``steps`` restored with ``task.state_from`` (one batch)."""
    E, T = d.obs[:, steps].shape[:2]
    flat = lambda x: jnp.asarray(x[:, steps].reshape(E * T, *x.shape[2:]))
    params = {k: jnp.asarray(np.repeat(v, T, 0)) for k, v in d.params.items()}
    restore = jax.vmap(lambda q, v, c, a, w, p: task.state_from(q, v, c, p, act=a, qacc_warmstart=w))
    return restore, (flat(d.qpos), flat(d.qvel), flat(d.ctrl), flat(d.act), flat(d.qacc_warmstart), params), flat


JOINTS = np.r_[0:21, 28:32]  # cos, sin, joint and finger positions and velocities: functions of qpos, qvel
CART = np.r_[21:24, 32:35, 39:42]  # grasp site, cube, cube - site (m)


def test_restored_states_show_the_recorded_observations(lift):
    task, d = lift
    E, T = d.obs.shape[:2]
    restore, args, _ = _restore(task, d)
    s = jax.jit(restore)(*args)
    obs = np.asarray(s.obs).reshape(E, T, -1)
    # reset states (t = 0) carry their own kinematics: restored exactly
    np.testing.assert_allclose(obs[:, 0, JOINTS], d.obs[:, 0, JOINTS], atol=1e-6)
    np.testing.assert_allclose(obs[:, 0, CART], d.obs[:, 0, CART], atol=1e-6)
    assert quat_close(obs[:, 0, 24:28], d.obs[:, 0, 24:28], 1e-5).all()
    assert quat_close(obs[:, 0, 35:39], d.obs[:, 0, 35:39], 1e-5).all()
    # later states: joint space exact; poses within one physics sub-step (5 ms) of motion, since a
    # stepped observation reads poses computed before the last sub-step
    np.testing.assert_allclose(obs[..., JOINTS], d.obs[..., JOINTS], atol=1e-6)
    np.testing.assert_allclose(obs[..., CART], d.obs[..., CART], atol=4e-3)
    assert np.abs(obs[:, 1:, CART] - d.obs[:, 1:, CART]).max() > 1e-5  # (that sub-step is real, not a copy)
    # success of a restored state: the recorded one, or the next step's where it flips in that sub-step
    restored = np.asarray(s.metrics["success"]).reshape(E, T)[:, 1:]
    assert ((restored == d.success[:, :-1]) | (restored == d.success[:, 1:])).all()


@pytest.mark.slow
def test_stepping_restored_states_reproduces_the_next_observation(lift):
    task, d = lift
    E, T = d.obs.shape[:2]
    restore, args, flat = _restore(task, d)
    nxt = jax.jit(lambda args, action: jax.vmap(task.step)(restore(*args), action))(args, flat(d.action))
    nobs = np.asarray(nxt.obs).reshape(E, T, -1)
    # from a restored reset state, the recorded action gives the recorded next observation and reward
    np.testing.assert_allclose(nobs[:, 0], d.obs[:, 1], atol=1e-4)
    np.testing.assert_allclose(np.asarray(nxt.reward).reshape(E, T)[:, 0], d.reward[:, 0], atol=1e-5)
    # from any state, the next observation follows closely (positions to a few mm)
    np.testing.assert_allclose(nobs[:, :-1, CART], d.obs[:, 1:, CART], atol=4e-3)


# --------------------------------------------------------------------------- plumbing into make and PPO
def test_ppo_config_validates_demo_fields(lift, tmp_path):
    from vasa.algos.offpolicy import OffPolicyConfig
    from vasa.algos.ppo_config import PPOConfig

    path = lift[1].save(tmp_path / "lift.npz")
    PPOConfig(env="robo/lift", demo_path=path, demo_ratio=0.25, demo_curriculum="reverse").validate()
    with pytest.raises(ValueError, match=r"PPOConfig.demo_ratio=1.5 is not allowed: it must be a number in \[0, 1\]"):
        PPOConfig(env="robo/lift", demo_path=path, demo_ratio=1.5).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_ratio=0.2 is not allowed: it applies to demonstrations"):
        PPOConfig(env="robo/lift", demo_ratio=0.2).validate()
    with pytest.raises(FileNotFoundError, match="PPOConfig.demo_path='/no/such.npz' is not allowed"):
        PPOConfig(env="robo/lift", demo_path="/no/such.npz").validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_path=.* env_id='robo/lift', not 'robo/door'"):
        PPOConfig(env="robo/door", demo_path=path).validate()
    with pytest.raises(ValueError, match="PPOConfig.reset_mode='cached' is not allowed"):
        PPOConfig(env="robo/lift", demo_path=path, reset_mode="cached").validate()
    with pytest.raises(ValueError, match="OffPolicyConfig.demo_curriculum='sideways' is not allowed"):
        OffPolicyConfig(env="robo/lift", demo_path=path, demo_curriculum="sideways").validate()
    # the forward/reverse window's schedule: validated, and only where it acts
    PPOConfig(env="robo/lift", demo_path=path, demo_curriculum="forward", demo_schedule=(10, 0, 1)).validate()
    with pytest.raises(ValueError, match=r"PPOConfig.demo_schedule=\(0, 25, 100\) is not allowed.*item 0 must be an integer >= 1 \(it is 0\)"):
        PPOConfig(env="robo/lift", demo_path=path, demo_curriculum="reverse", demo_schedule=(0, 25, 100)).validate()
    with pytest.raises(ValueError, match=r"OffPolicyConfig.demo_schedule=\(5, 5, 1\) is not allowed: it applies to "
                                         "demonstrations"):
        OffPolicyConfig(env="robo/lift", demo_schedule=(5, 5, 1)).validate()
    with pytest.raises(ValueError, match="OffPolicyConfig.demo_until_success=False is not allowed: it applies to "
                                         "demonstrations"):
        OffPolicyConfig(env="robo/lift", demo_until_success=False).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_until_success=1 is not allowed"):
        PPOConfig(env="robo/lift", demo_path=path, demo_until_success=1).validate()
    with pytest.raises(ValueError, match=r"PPOConfig.demo_schedule=\(5, 5, 1\) is not allowed: it moves the "
                                         "forward/reverse window"):
        PPOConfig(env="robo/lift", demo_path=path, demo_schedule=(5, 5, 1)).validate()
    PPOConfig(env="robo/lift", demo_path=path, demo_separate_advantages=True).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_separate_advantages=True is not allowed: it applies to "
                                         "demonstrations: set demo_path"):
        PPOConfig(env="robo/lift", demo_separate_advantages=True).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_separate_advantages=True is not allowed: .* set "
                                         "normalize_advantages"):
        PPOConfig(env="robo/lift", demo_path=path, demo_separate_advantages=True, normalize_advantages=False).validate()
    PPOConfig(env="robo/lift", demo_path=path, demo_warmup=100_000).validate()
    with pytest.raises(ValueError, match="OffPolicyConfig.demo_warmup=1000 is not allowed: it applies to demonstrations"):
        OffPolicyConfig(env="robo/lift", demo_warmup=1000).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_warmup=1000 is not allowed: .*set demo_ratio > 0"):
        PPOConfig(env="robo/lift", demo_path=path, demo_ratio=0.0, demo_warmup=1000).validate()
    with pytest.raises(ValueError, match=r"PPOConfig.demo_warmup=-5 is not allowed"):
        PPOConfig(env="robo/lift", demo_path=path, demo_warmup=-5).validate()
    PPOConfig(env="robo/lift", demo_path=path, demo_anneal=500_000).validate()
    with pytest.raises(ValueError, match="OffPolicyConfig.demo_anneal=1000 is not allowed: it applies to demonstrations"):
        OffPolicyConfig(env="robo/lift", demo_anneal=1000).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_anneal=1000 is not allowed: .*set demo_ratio > 0"):
        PPOConfig(env="robo/lift", demo_path=path, demo_ratio=0.0, demo_anneal=1000).validate()
    PPOConfig(env="robo/lift", demo_path=path, demo_curriculum="reverse", demo_grow_at=0.5).validate()
    with pytest.raises(ValueError, match="OffPolicyConfig.demo_grow_at=0.5 is not allowed: it applies to demonstrations"):
        OffPolicyConfig(env="robo/lift", demo_grow_at=0.5).validate()
    with pytest.raises(ValueError, match="PPOConfig.demo_grow_at=0.5 is not allowed: it grows the forward/reverse"):
        PPOConfig(env="robo/lift", demo_path=path, demo_grow_at=0.5).validate()
    with pytest.raises(ValueError, match=r"PPOConfig.demo_grow_at=2.0 is not allowed: it must be a number in \[0, 1\]"):
        PPOConfig(env="robo/lift", demo_path=path, demo_curriculum="reverse", demo_grow_at=2.0).validate()


def test_make_passes_the_schedule_to_the_curriculum(lift, tmp_path):
    from vasa.algos import ppo
    from vasa.algos.ppo_config import PPOConfig

    path = lift[1].save(tmp_path / "lift.npz")
    config = PPOConfig(env="robo/lift", demo_path=path, demo_ratio=0.25, demo_curriculum="reverse",
                       demo_schedule=(5, 10, 2), demo_until_success=False)
    (cur,) = [e for e in _chain(ppo.make_env(config)) if isinstance(e, DemoCurriculum)]
    assert (cur.ratio, cur.mode, cur.window, cur.increment, cur.increment_every) == (0.25, "reverse", 5, 10, 2)
    assert not cur.until_success and (cur.lengths == lift[1].length).all()
    assert cur.warmup == 0 and cur.grow_at == 0 and not cur.adaptive
    grown = dataclasses.replace(config, demo_grow_at=0.6)
    (cur,) = [e for e in _chain(ppo.make_env(grown)) if isinstance(e, DemoCurriculum)]
    assert cur.grow_at == 0.6 and cur.adaptive
    (cur,) = [e for e in _chain(ppo.make_env(config)) if isinstance(e, DemoCurriculum)]
    # the warm-up in environment steps of all environments (repeats counted) becomes steps of each:
    # ceil(1000 / (64 * 1)) = 16, ceil(1000 / (64 * 4)) = 4
    for repeat, want in ((1, 16), (4, 4)):
        warm = dataclasses.replace(config, num_envs=64, action_repeat=repeat, demo_warmup=1000)
        (cur,) = [e for e in _chain(ppo.make_env(warm)) if isinstance(e, DemoCurriculum)]
        assert cur.warmup == want
        annealed = dataclasses.replace(config, num_envs=64, action_repeat=repeat, demo_anneal=1000)
        (cur,) = [e for e in _chain(ppo.make_env(annealed)) if isinstance(e, DemoCurriculum)]
        assert (cur.warmup, cur.anneal) == (0, want)
    (cur,) = [e for e in _chain(make("robo/lift", demos=lift[1])) if isinstance(e, DemoCurriculum)]
    assert cur.until_success and (cur.lengths == lift[1].steps_to_success()).all()
    assert not any(isinstance(e, DemoCurriculum) for e in _chain(ppo.make_env(config, evaluation=True)))
    with pytest.raises(ValueError, match=r"demo_schedule=\(5, 10\) is not allowed: give \(window, increment"):
        make("robo/lift", demos=lift[1], demo_schedule=(5, 10))


def _chain(env) -> list:
    out = []
    while env is not None:
        out.append(env)
        env = getattr(env, "env", None)
    return out


@pytest.mark.slow
def test_make_with_demos_and_ppo_iterations(lift, tmp_path):
    from vasa.algos import ppo
    from vasa.algos.ppo_config import PPOConfig

    _, d = lift
    env = make("robo/lift", demos=d, demo_ratio=1.0, demo_curriculum="reverse", episode_length=2)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(5), 4))
    ep, t = np.asarray(state.info["demo"]["episode"]), np.asarray(state.info["demo"]["t"])
    assert (t >= 40 - 25).all()  # the initial reverse window: the last 25 steps
    np.testing.assert_allclose(np.asarray(state.obs)[:, :21], d.obs[ep, t, :21], atol=1e-6)
    state = jax.jit(jax.vmap(env.step))(state, jnp.asarray(d.action[ep, t]))
    state = jax.jit(jax.vmap(env.step))(state, jnp.zeros((4, 7)))
    assert (np.asarray(state.info["demo_resets"]) == 2).all()  # first reset + one auto-reset

    path = d.save(tmp_path / "lift.npz")
    config = PPOConfig(env="robo/lift", num_envs=4, unroll_length=8, num_minibatches=2, num_epochs=1,
                       episode_length=16, action_repeat=1, total_env_steps=3 * 32, policy_layers=(16,),
                       value_layers=(16,), demo_path=path, demo_ratio=0.5, demo_curriculum="reverse",
                       demo_separate_advantages=True)
    assert "demo_resets" in ppo.make_env(config).reset(jax.random.PRNGKey(0)).info
    assert "demo_resets" not in ppo.make_env(config, evaluation=True).reset(jax.random.PRNGKey(0)).info
    state = ppo.init(config)
    step = ppo.make_train_step(config)
    for _ in range(3):
        state, metrics = step(state)
    assert np.isfinite(float(np.asarray(metrics["loss"]).mean()))
    assert int(np.asarray(state.env_state.info["demo_resets"]).sum()) >= 1


def test_every_robo_task_has_a_scripted_controller_and_the_recorder_offers_it():
    """``scripted_policy`` covers every registered ``robo/*`` id (so ``record_demos.py`` can
    record any of them), binds the nut type, and refuses ids without a controller by name."""
    import functools

    from examples.record_demos import parse
    from vasa.envs.core import registered_ids
    from vasa.envs.tasks.manipulation import scripted_nut
    from vasa.envs.tasks.manipulation.scripted_registry import POLICIES, scripted_policy

    robo = sorted(i for i in registered_ids() if i.startswith("robo/"))
    assert sorted(POLICIES) == robo
    nut = scripted_policy("robo/nut_assembly", nut_type="square")
    assert isinstance(nut, functools.partial) and nut.func is scripted_nut.nut_assembly_policy
    assert nut.keywords == {"nut_type": "square"}
    assert scripted_policy("robo/stack", seed=3) is POLICIES["robo/stack"]
    with pytest.raises(ValueError, match=r"env_id='dmc/cartpole_balance'.*robo/lift"):
        scripted_policy("dmc/cartpole_balance")
    args = parse(["--out", "x.npz", "--env", "robo/nut_assembly", "--env-options", "nut_type=round"])
    assert args.env == "robo/nut_assembly" and args.env_options == ("nut_type=round",)
    with pytest.raises(SystemExit):
        parse(["--out", "x.npz", "--env", "robo/unknown"])
