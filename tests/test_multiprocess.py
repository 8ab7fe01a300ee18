"""Many processes on this one machine, connected by ``vasa.dist.initialize`` over localhost
(gloo CPU collectives): PPO (and, marked slow, SAC) as two processes with one CPU device each
equals one process with two devices (including a two-process checkpoint and resume; a slow
test resumes a two-process checkpoint in one process); a killed process makes its peer
fail quickly instead of hanging; ``vasa launch local`` prefixes output and stops the rest when
one process fails.

Every process runs under a subprocess timeout, so a hang fails the test instead of stalling the suite.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = ("ppo.PPOConfig(env='toy/pendulum', num_envs=32, unroll_length=16, num_minibatches=8, num_epochs=2, "
          "action_repeat=1, total_env_steps=32 * 16 * {iters}, policy_layers=(32, 32), value_layers=(32, 32))")
# SAC: 4 warm-up iterations (random actions) then 8 learning ones of 4 updates each
SAC_CONFIG = ("sac.SACConfig(env='toy/pendulum', num_envs=4, batch_size=32, learning_starts=16, replay_ratio=1.0, "
              "buffer_size=256, hidden_layers=(32, 32), total_env_steps=4 * 8, action_repeat=1)")

# PPO (4 iterations) and/or SAC (12) (argv[3]: "ppo", "sac" or "ppo,sac") into <root>/ppo and
# <root>/sac; "first" stops halfway (PPO after 2, SAC after 6, each with a checkpoint there),
# "resume" continues
TRAIN = f"""
import dataclasses, os, sys
import vasa.dist
vasa.dist.initialize_if_launched(heartbeat_timeout_s=10, shutdown_timeout_s=10)
import jax, numpy as np
from jax.experimental import multihost_utils
from vasa.algos import offpolicy, ppo, sac
from vasa.run import RunConfig

root, mode, algos = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
config = {CONFIG.format(iters=4)}
if "ppo" not in algos:
    pass
elif mode == "resume":
    run = RunConfig(resume=os.path.join(root, "ppo"), progress=False)
else:  # checkpoints at 2 and 4; "first" stops after 2
    run = RunConfig(run_dir=os.path.join(root, "ppo"), progress=False, eval_every=0, checkpoint_every=2, chunk=2,
                    max_iterations=2 if mode == "first" else None)
if "ppo" in algos:
    _, state, rows = ppo.train(config, run)
    # replicated over the mesh: every process holds the whole parameters
    leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves((state.params, state.normalizer, state.beta))]
    np.savez(os.path.join(root, "ppo", f"params{{jax.process_index()}}.npz"), *leaves)
    print("trained to iteration", rows[-1]["iteration"], "on", jax.device_count(), "devices")

config = {SAC_CONFIG}
if "sac" not in algos:
    sys.exit(0)
elif mode == "resume":
    run = dataclasses.replace(offpolicy.DEFAULT_RUN, resume=os.path.join(root, "sac"), progress=False)
else:
    run = dataclasses.replace(offpolicy.DEFAULT_RUN, run_dir=os.path.join(root, "sac"), progress=False, eval_every=0,
                              checkpoint_every=6, chunk=3, num_eval_envs=4, max_iterations=6 if mode == "first" else None)
_, state, rows = sac.train(config, run)
# the whole state, gathered (the replay buffer and the environments are split over the processes)
gather = (lambda x: multihost_utils.process_allgather(x, tiled=True)) if jax.process_count() > 1 else (lambda x: x)
np.savez(os.path.join(root, "sac", f"state{{jax.process_index()}}.npz"), *[np.asarray(gather(x)) for x in jax.tree.leaves(state)])
print("SAC trained to iteration", rows[-1]["iteration"], "on", jax.device_count(), "devices")
"""

# all-reduces over both processes until killed, printing each round (a dead peer is the
# distributed runtime's and gloo's business, the same for PPO's collectives as for this one)
LOOP = """
import time
import vasa.dist
vasa.dist.initialize(heartbeat_timeout_s=10, shutdown_timeout_s=10)
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from vasa.dist import make_mesh, pmean
mesh = make_mesh()
x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), np.full(4, jax.process_index(), np.float32))
step = jax.jit(jax.shard_map(lambda x: pmean(x), mesh=mesh, in_specs=P("data"), out_specs=P()))
for i in range(100_000):
    print("round", i, float(step(x)[0]), flush=True)
    time.sleep(0.02)
"""


def _env(devices: int = 1) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("VASA_COORDINATOR", "VASA_NUM_PROCESSES", "VASA_PROCESS_ID"):
        env.pop(name, None)
    return env


def _run(args, cwd, devices=1, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=_env(devices), cwd=cwd, timeout=timeout)


def _launch(n, command, cwd, timeout=300) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "vasa", "launch", "local", "--processes", str(n), "--", *command], cwd, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


FILES = {"ppo": ("params", 10), "sac": ("state", 40)}  # what TRAIN saves, and at least how many arrays
STOPS = {"ppo": (2, 4), "sac": (6, 12)}  # the checkpoint of "first", the last iteration


def _same_state(algo, reference_dir, other_dir, processes=2):
    """PPO's replicated parameters or SAC's whole state (gathered) equal, bitwise, in every process."""
    name, at_least = FILES[algo]
    reference = np.load(os.path.join(reference_dir, algo, f"{name}0.npz"))
    for p in range(processes):
        got = np.load(os.path.join(other_dir, algo, f"{name}{p}.npz"))
        assert len(got.files) == len(reference.files) > at_least
        for k in reference.files:
            np.testing.assert_array_equal(got[k], reference[k], err_msg=f"{algo}, process {p}, leaf {k}")


def _two_processes_equal_one(tmp_path, algo):
    """One process with two devices trains straight through; two processes train to a
    checkpoint halfway, then a two-process resume finishes: the final states are equal."""
    (tmp_path / "train.py").write_text(TRAIN)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    half, last = STOPS[algo]
    done = "SAC trained" if algo == "sac" else "trained"
    out = _ok(_run([sys.executable, "train.py", one, "full", algo], tmp_path, devices=2))
    assert f"{done} to iteration {last} on 2 devices" in out

    out = _ok(_launch(2, [sys.executable, "train.py", two, "first", algo], tmp_path))
    for i in range(2):
        assert f"[{i}] vasa.dist: process {i} of 2, 1 local device(s), 2 global (cpu)" in out, out
        assert f"[{i}] {done} to iteration {half} on 2 devices" in out, out
    assert sorted(os.listdir(os.path.join(two, algo, "checkpoints"))) == [str(half)]
    state_dir = os.path.join(two, algo, "checkpoints", str(half), "state")
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(state_dir)), os.listdir(state_dir)
    out = _ok(_launch(2, [sys.executable, "train.py", two, "resume", algo], tmp_path))
    for i in range(2):
        assert f"[{i}] resuming {two}/{algo} from checkpoint {half} (its SHA-256 sums match)" in out, out
        assert f"[{i}] {done} to iteration {last} on 2 devices" in out, out
    assert out.count("run directory:") == 1 and "[0] run directory:" in out  # process 0 alone reports
    assert "note:" not in out  # the same layout as saved

    _same_state(algo, one, two)
    # one writer: every iteration exactly once, the same learning metrics
    rows_one, rows_two = _rows(os.path.join(one, algo)), _rows(os.path.join(two, algo))
    assert [r["iteration"] for r in rows_two] == [str(i) for i in range(1, last + 1)]
    for a, b in zip(rows_one, rows_two):
        for k in ("loss", "policy_loss", "value_loss", "kl", "grad_norm", "critic_loss", "eval_return", "env_steps"):
            assert a.get(k) == b.get(k), (k, a, b)
    assert os.path.exists(os.path.join(two, algo, "learning_curve.png"))


def test_two_processes_equal_one_process_with_two_devices(tmp_path):
    """PPO, bitwise: with two participants an all-reduce adds the same two numbers whether
    XLA's in-process CPU collective or gloo across processes does it (float addition is
    commutative), and every other operation runs the same program on the same rows. (With
    more than two participants gloo's reduction order may differ from XLA's, and equality
    would hold to float32 rounding, ~1e-6 relative, instead.)"""
    _two_processes_equal_one(tmp_path, "ppo")


@pytest.mark.slow
def test_sac_two_processes_equal_one_process_with_two_devices(tmp_path):
    """SAC, bitwise, the whole state (replay buffer and environments, split over the
    processes, included): as for PPO, and SAC's replay sampling is keyed by the device index,
    the same in both layouts. (~4 min on the shared 2-core CPU: SAC's compile dominates.)"""
    _two_processes_equal_one(tmp_path, "sac")


@pytest.mark.slow
def test_resume_two_process_checkpoint_in_one_process(tmp_path):
    """Another number of processes than saved: orbax reshards (every array keeps its global
    shape), so a SAC checkpoint written by 2 processes x 1 device resumes in 1 process x 2
    devices and ends bitwise where the uninterrupted run ends; with 1 device it resumes too,
    with a note that results then differ from the 2-device run."""
    import shutil

    (tmp_path / "train.py").write_text(TRAIN)
    one, two, moved = (str(tmp_path / n) for n in ("one", "two", "moved"))
    _ok(_run([sys.executable, "train.py", one, "full", "sac"], tmp_path, devices=2))
    _ok(_launch(2, [sys.executable, "train.py", two, "first", "sac"], tmp_path))
    shutil.copytree(two, moved)
    out = _ok(_run([sys.executable, "train.py", moved, "resume", "sac"], tmp_path, devices=2))
    assert "saved by 2 process(es) with 2 device(s); resuming with 1 process(es) and 2 device(s)" in out, out
    assert "the device count is the same, so the run continues exactly" in out
    _same_state("sac", one, moved, processes=1)
    out = _ok(_run([sys.executable, "train.py", two, "resume", "sac"], tmp_path, devices=1))
    assert "resuming with 1 process(es) and 1 device(s)" in out and "not bitwise" in out, out


def test_killed_process_fails_its_peer(tmp_path):
    """Process 1 is SIGKILLed while both all-reduce in a loop; process 0 (the coordinator)
    must exit with an error within 60 s (measured: ~7 s, below heartbeat_timeout_s = 10). Its
    collective fails at once (gloo: connection reset by peer); the coordination service then
    names the dead task (heartbeat timeout) and ends the process (SIGABRT)."""
    (tmp_path / "loop.py").write_text(LOOP)
    from vasa.dist.launch import free_port

    port = free_port()
    logs = [open(tmp_path / f"out{i}.txt", "w+") for i in range(2)]
    procs = []
    for i in range(2):
        env = {**_env(), "VASA_COORDINATOR": f"127.0.0.1:{port}", "VASA_NUM_PROCESSES": "2", "VASA_PROCESS_ID": str(i)}
        procs.append(subprocess.Popen([sys.executable, "loop.py"], env=env, cwd=tmp_path, stdout=logs[i],
                                      stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 120
        while not all("round 3 0.5" in (tmp_path / f"out{i}.txt").read_text() for i in range(2)):
            assert all(p.poll() is None for p in procs), [(tmp_path / f"out{i}.txt").read_text()[-3000:] for i in range(2)]
            assert time.monotonic() < deadline, "the two processes did not connect"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        t = time.monotonic()
        try:
            code = procs[0].wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("process 0 still running 60 s after its peer was killed")
        took = time.monotonic() - t
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
    text = (tmp_path / "out0.txt").read_text(errors="replace")
    assert code != 0, text[-3000:]
    assert "Gloo all-reduce failed" in text or "Task 1 heartbeat timeout" in text, text[-3000:]
    print(f"survivor exited with {code} after {took:.1f} s")


def test_launch_local_prefixes_output_and_stops_the_rest(tmp_path):
    code = ("import os, sys, time; i = int(os.environ['VASA_PROCESS_ID']); "
            "print('process', i, 'of', os.environ['VASA_NUM_PROCESSES'], os.environ['VASA_COORDINATOR'].split(':')[0]); "
            "sys.exit(0) if os.environ.get('OK') else (sys.exit(3) if i == 1 else time.sleep(300))")
    env = {**_env(), "OK": "1"}
    proc = subprocess.run([sys.executable, "-m", "vasa", "launch", "local", "-n", "3", "--", sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    out = _ok(proc)
    assert {"[0] process 0 of 3 127.0.0.1", "[1] process 1 of 3 127.0.0.1", "[2] process 2 of 3 127.0.0.1"} <= set(
        out.splitlines()), out

    t = time.monotonic()
    proc = _launch(2, [sys.executable, "-c", code], tmp_path, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "vasa launch: process 1 exited with status 3; stopping the others" in proc.stdout
    assert time.monotonic() - t < 30  # process 0 (sleeping 300 s) was stopped

    proc = _run([sys.executable, "-m", "vasa", "launch", "local", "-n", "2"], tmp_path, timeout=60)
    assert proc.returncode == 2 and "no command given" in proc.stderr


def test_initialize_errors(run_python):
    out = run_python("""
import jax, vasa.dist
jax.devices()
try:
    vasa.dist.initialize("127.0.0.1:1", 2, 0)
except RuntimeError as e:
    assert "must run before anything initialises a JAX backend" in str(e), e
    print("ok")
""")
    assert "ok" in out
    out = run_python("""
import os, vasa.dist
for k in list(os.environ):
    if k.startswith(("VASA_", "SLURM_", "OMPI_", "JAX_COORDINATOR")):
        del os.environ[k]
assert not vasa.dist.launched()
try:
    vasa.dist.initialize()
except ValueError as e:
    assert "vasa launch local" in str(e), e
    print("ok")
""")
    assert "ok" in out
