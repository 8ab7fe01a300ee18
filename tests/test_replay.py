"""The replay buffer against a NumPy model of the streams it records.

Every frame carries its own id (three base-256 digits in the pixel values) and every action
the id of its transition, so a sampled batch can be checked exactly: the frame stacks, the
n-step return and discount, and the bootstrap observation.
"""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from vasa import replay
from vasa.envs import ArraySpec

K = 3  # frame stack
GAMMA = 0.9


def _frame(i: int) -> np.ndarray:
    return np.array([i % 256, (i // 256) % 256, i // 65536], np.uint8).reshape(1, 1, 3)


def _ids(pixels: np.ndarray) -> np.ndarray:
    """``uint8 [..., 1, 1, 3k]`` -> frame ids ``[..., k]``."""
    p = pixels.reshape(pixels.shape[:-3] + (-1, 3)).astype(np.int64)
    return p[..., 0] + 256 * p[..., 1] + 65536 * p[..., 2]


class Streams:
    """NumPy model: E envs with pixel stacks (reset fills the stack with the first frame)."""

    def __init__(self, E, seed, p_done=0.15, p_terminal=0.5):
        self.E, self.rng = E, np.random.default_rng(seed)
        self.p_done, self.p_terminal = p_done, p_terminal
        self.next_id = 1
        self.episode_of = {}  # frame id -> (env, episode number)
        self.episodes = [0] * E
        self._env = 0
        self.stacks = []
        for e in range(E):
            self._env = e
            self.stacks.append(self._reset())
        self.steps = np.zeros(E, int)
        self.transitions = {}  # id -> dict
        self.order = [[] for _ in range(E)]  # transition ids per env, in order

    def _new_frame(self):
        i = self.next_id
        self.next_id += 1
        self.episode_of[i] = (self._env, self.episodes[self._env])
        return i

    def _reset(self):
        f = self._new_frame()
        return [f] * K

    def obs(self, stacks, steps):
        pixels = np.stack([np.concatenate([_frame(i) for i in s], axis=-1) for s in stacks])
        return {"pixels": pixels, "proprio": np.asarray(steps, np.float32)[:, None] * np.ones((1, 2), np.float32)}

    def step(self):
        """Returns the batched arguments of replay.add."""
        E = self.E
        action = np.zeros((E, 2), np.float32)
        reward = self.rng.normal(size=E).astype(np.float32)
        done = self.rng.random(E) < self.p_done
        terminal = done & (self.rng.random(E) < self.p_terminal)
        next_stacks, after_stacks, next_steps, after_steps = [], [], [], []
        for e in range(E):
            self._env = e
            tid = len(self.transitions) + 1
            action[e] = [tid, e]
            nxt = self.stacks[e][1:] + [self._new_frame()]
            self.transitions[tid] = dict(obs=list(self.stacks[e]), next=list(nxt), reward=float(reward[e]),
                                         done=bool(done[e]), terminal=bool(terminal[e]), env=e,
                                         step=int(self.steps[e]))
            self.order[e].append(tid)
            next_stacks.append(nxt)
            next_steps.append(self.steps[e] + 1)
            if done[e]:
                self.episodes[e] += 1
                self.stacks[e] = self._reset()
                self.steps[e] = 0
            else:
                self.stacks[e] = nxt
                self.steps[e] += 1
            after_stacks.append(self.stacks[e])
            after_steps.append(self.steps[e])
        return (jnp.asarray(action), jnp.asarray(reward), jax.tree.map(jnp.asarray, self.obs(next_stacks, next_steps)),
                jnp.asarray(terminal), jnp.asarray(done), jax.tree.map(jnp.asarray, self.obs(after_stacks, after_steps)))

    def nstep(self, tid, n):
        t = self.transitions[tid]
        ids = self.order[t["env"]]
        pos = ids.index(tid)
        ret, disc, last = 0.0, 1.0, t
        for m in range(n):
            if pos + m >= len(ids):
                break
            last = self.transitions[ids[pos + m]]
            ret += disc * last["reward"]
            disc *= GAMMA
            if last["done"]:
                break
        return ret, (0.0 if last["terminal"] else disc), last["next"]


SPEC = {"pixels": ArraySpec((1, 1, 3 * K), jnp.uint8), "proprio": ArraySpec((2,), jnp.float32)}


def _fill(E, capacity, steps, seed, **kw):
    model = Streams(E, seed, **kw)
    buf = replay.create(SPEC, 2, capacity, E, frame_stack=K)
    buf = replay.start(buf, jax.tree.map(jnp.asarray, model.obs(model.stacks, model.steps)))
    add = jax.jit(replay.add)
    for _ in range(steps):
        buf = add(buf, *model.step())
    return model, buf


def _check_batch(model, batch, n):
    batch = jax.device_get(batch)
    for b in range(batch.action.shape[0]):
        tid = int(batch.action[b, 0])
        t = model.transitions[tid]
        assert int(batch.env[b]) == t["env"] == int(batch.action[b, 1])
        np.testing.assert_array_equal(_ids(batch.obs["pixels"][b]), t["obs"])
        assert batch.obs["proprio"][b, 0] == t["step"]
        ret, disc, nxt = model.nstep(tid, n)
        np.testing.assert_allclose(batch.reward[b], ret, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch.discount[b], disc, rtol=1e-6)
        np.testing.assert_array_equal(_ids(batch.next_obs["pixels"][b]), nxt)


@pytest.mark.parametrize("n", [1, 3])
def test_stacks_and_nstep_against_numpy_across_episodes_and_wraparound(n):
    # 4 envs x 16 slots, 60 steps with ~15% episode ends: the ring wraps several times
    model, buf = _fill(E=4, capacity=64, steps=60, seed=n)
    assert int(buf.count.min()) > buf.slots  # wrapped
    batch = jax.jit(replay.sample, static_argnums=(2, 3, 4))(buf, jax.random.PRNGKey(0), 512, n, GAMMA)
    _check_batch(model, batch, n)
    # samples never come from transitions overwritten since (or from stacks reaching into them)
    tids = {int(a) for a in np.asarray(batch.action[:, 0])}
    for e in range(4):
        recent = model.order[e][-(buf.slots - K - 2):]
        assert {t for t in tids if model.transitions[t]["env"] == e} <= set(model.order[e])
        assert any(t in recent for t in tids)


def test_stack_never_crosses_an_episode_start():
    model, buf = _fill(E=3, capacity=300, steps=40, seed=7, p_done=0.4)
    batch = jax.device_get(replay.sample(buf, jax.random.PRNGKey(1), 1024, 2, GAMMA))
    firsts = 0
    for b in range(1024):
        t = model.transitions[int(batch.action[b, 0])]
        ids = _ids(batch.obs["pixels"][b])
        if t["step"] < K - 1:  # young episode: the first frame fills the front of the stack
            firsts += 1
            assert (ids[: K - 1 - t["step"]] == ids[K - 1 - t["step"]]).all()
        # all frames of one stack (and of its successor) belong to the transition's episode
        episode = model.episode_of[t["obs"][-1]]
        assert {model.episode_of[int(i)] for i in ids} == {episode}
        assert {model.episode_of[int(i)] for i in _ids(batch.next_obs["pixels"][b])} == {episode}
    assert firsts > 100


def test_sampling_is_uniform_over_stored_transitions():
    model, buf = _fill(E=4, capacity=4 * 64, steps=40, seed=3, p_done=0.1)
    stored = int(buf.size())
    assert stored == len(model.transitions) == 160
    n = 200 * stored
    batch = jax.jit(replay.sample, static_argnums=(2,))(buf, jax.random.PRNGKey(5), n)
    counts = np.bincount(np.asarray(batch.action[:, 0]).astype(int), minlength=stored + 1)[1:]
    expected = n / stored
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = stored - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), chi2
    assert counts.min() > 0


def test_sampling_when_ring_is_full_excludes_only_what_it_must():
    model, buf = _fill(E=2, capacity=2 * 12, steps=50, seed=11, p_done=0.0)
    batch = jax.device_get(replay.sample(buf, jax.random.PRNGKey(2), 4000, 1, GAMMA))
    _check_batch(model, jax.tree.map(lambda x: x[:200], batch), 1)
    tids = set(np.asarray(batch.action[:, 0]).astype(int))
    # without episode ends each env keeps L - K sampleable transitions
    assert len(tids) == 2 * (buf.slots - K)


def test_memory_of_a_million_pixel_transitions_fits():
    spec = {"pixels": ArraySpec((84, 84, 9), jnp.uint8), "proprio": ArraySpec((24,), jnp.float32)}
    nbytes = replay.memory_bytes(spec, 6, 1_000_000, frame_stack=3)
    assert nbytes <= 25e9
    assert nbytes >= 84 * 84 * 3 * 1_000_000  # one frame per slot, not one stack
    small = replay.create(spec, 6, 4 * 8, 4, frame_stack=3)
    actual = sum(x.nbytes for x in jax.tree.leaves(small))
    assert actual == replay.memory_bytes(spec, 6, 32, frame_stack=3) + 2 * 4 * 4  # + pointer, count


def test_state_observations_and_errors():
    spec = ArraySpec((3,), jnp.float32)
    buf = replay.create(spec, 1, 40, 2)
    buf = replay.start(buf, jnp.zeros((2, 3)))
    for t in range(5):
        o = jnp.full((2, 3), t + 1.0)
        buf = replay.add(buf, jnp.full((2, 1), float(t)), jnp.ones(2), o, jnp.zeros(2), jnp.zeros(2), o)
    assert bool(replay.ready(buf))
    b = replay.sample(buf, jax.random.PRNGKey(0), 64)
    np.testing.assert_array_equal(b.next_obs[:, 0], b.obs[:, 0] + 1)
    np.testing.assert_array_equal(b.obs[:, 0], b.action[:, 0])
    with pytest.raises(ValueError, match="capacity=8 is too small"):
        replay.create(spec, 1, 8, 4)
    with pytest.raises(ValueError, match="frame_stack=0"):
        replay.create(spec, 1, 100, 4, frame_stack=0)
    with pytest.raises(ValueError, match="not a multiple of frame_stack=2"):
        replay.create({"pixels": ArraySpec((4, 4, 3), jnp.uint8)}, 1, 100, 2, frame_stack=2)


def test_save_restore_is_bitwise(tmp_path):
    from vasa.run import Checkpointer

    _, buf = _fill(E=2, capacity=40, steps=30, seed=4)
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(1, {"buffer": buf, "key": jax.random.PRNGKey(9)})
    target = {"buffer": jax.tree.map(jnp.zeros_like, buf), "key": jax.random.PRNGKey(0)}
    _, restored = ckpt.restore(target)
    ckpt.close()
    for a, b in zip(jax.tree.leaves(buf), jax.tree.leaves(restored["buffer"])):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    one = replay.sample(buf, restored["key"], 32, 3, GAMMA)
    two = replay.sample(restored["buffer"], jax.random.PRNGKey(9), 32, 3, GAMMA)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


SHARDED = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import sys; sys.path.insert(0, {tests!r})
from test_replay import Streams, SPEC, K
from vasa import replay
from vasa.dist.mesh import make_mesh, DATA_AXIS
E = 8
model = Streams(E, 0)
steps = [model.step() for _ in range(30)]
model0 = Streams(E, 0)
first = jax.tree.map(jnp.asarray, model0.obs(model0.stacks, model0.steps))

def run(mesh):
    buf = replay.create(SPEC, 2, E * 12, E, frame_stack=K)
    specs = jax.tree.map(lambda x: P(None, DATA_AXIS) if x.ndim > 1 else P(DATA_AXIS), buf)
    put = lambda tree, spec: jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), tree, spec)
    buf = put(buf, specs)
    batch_spec = lambda t: jax.tree.map(lambda _: P(DATA_AXIS), t)
    start = jax.jit(jax.shard_map(replay.start, mesh=mesh, in_specs=(specs, batch_spec(first)), out_specs=specs))
    buf = start(buf, first)
    add = jax.jit(jax.shard_map(replay.add, mesh=mesh, in_specs=(specs,) + tuple(batch_spec(a) for a in steps[0]),
                                out_specs=specs))
    for args in steps:
        buf = add(buf, *args)
    return buf

one, four = run(make_mesh(1)), run(make_mesh(4))
assert len(four.reward.sharding.device_set) == 4
for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

# each device samples its own shard
mesh = make_mesh(4)
def local_sample(buf, key):
    key = jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS))
    b = replay.sample(buf, key, 16, 2, 0.9)
    return b.action[:, 1], b.env
specs = jax.tree.map(lambda x: P(None, DATA_AXIS) if x.ndim > 1 else P(DATA_AXIS), four)
fn = jax.jit(jax.shard_map(local_sample, mesh=mesh, in_specs=(specs, P()), out_specs=(P(DATA_AXIS), P(DATA_AXIS))))
env_of_action, local_env = fn(four, jax.random.PRNGKey(0))
env_of_action = np.asarray(env_of_action).reshape(4, 16)
for d in range(4):
    assert set(env_of_action[d].astype(int)) <= {{2 * d, 2 * d + 1}}, (d, env_of_action[d])
print("OK")
"""


def test_sharded_buffer_equals_single_device(run_python):
    import os

    out = run_python(SHARDED.format(tests=os.path.dirname(os.path.abspath(__file__))), devices=4)
    assert "OK" in out
