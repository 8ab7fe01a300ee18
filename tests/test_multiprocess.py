"""Many processes on this one machine, connected by ``vasa.dist.initialize`` over localhost
(gloo CPU collectives): PPO (and, marked slow, ES, recurrent PPO, SAC, DDPG and DAgger) as
two processes with one CPU device each equal one process with two devices (including a
two-process checkpoint and resume; a slow test resumes a two-process checkpoint in one
process); a killed process makes its peer fail quickly instead of hanging; ``vasa launch
local`` prefixes output and stops the rest when one process fails.

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

CONFIGS = {
    "ppo": "ppo.PPOConfig(env='toy/pendulum', num_envs=32, unroll_length=16, num_minibatches=8, num_epochs=2, "
           "action_repeat=1, total_env_steps=32 * 16 * 4, policy_layers=(32, 32), value_layers=(32, 32))",
    # recurrent PPO: hidden states carried across iterations, sequences split over the devices
    "ppo_lstm": "ppo.PPOConfig(env='toy/pendulum', num_envs=32, unroll_length=16, num_minibatches=8, num_epochs=2, "
                "action_repeat=1, total_env_steps=32 * 16 * 4, policy_layers=(32, 32), value_layers=(32, 32), "
                "core='lstm', core_size=16)",
    # SAC and DDPG: 4 warm-up iterations (random actions) then 8 learning ones of 4 updates each
    "sac": "sac.SACConfig(env='toy/pendulum', num_envs=4, batch_size=32, learning_starts=16, replay_ratio=1.0, "
           "buffer_size=256, hidden_layers=(32, 32), total_env_steps=4 * 8, action_repeat=1)",
    "ddpg": "ddpg.DDPGConfig(env='toy/pendulum', num_envs=4, batch_size=32, learning_starts=16, replay_ratio=1.0, "
            "buffer_size=256, hidden_layers=(32, 32), total_env_steps=4 * 8, action_repeat=1)",
    # DAgger on the toy pixel task with its known linear expert: 8 seeding steps, then 8 iterations
    "dagger": "dagger.DAggerConfig(env='toy/reach2d', image_size=16, frame_stack=2, action_repeat=1, num_envs=8, "
              "expert_steps=8, student_steps=8, dataset_size=256, batch_size=16, hidden_layers=(32, 32), "
              "safety_layers=(16,), feature_dim=16, distractors=DistractorConfig(sources=('shapes',), "
              "num_images=16, image_size=(16, 16)))",
    # ES: 8 members (4 per device, antithetic pairs), 40-step episodes, 4 iterations
    "es": "es.ESConfig(env='toy/pendulum', population=8, episode_length=40, hidden_layers=(16, 16), "
          "total_env_steps=8 * 40 * 4, action_repeat=1)",
}
STOPS = {"ppo": (2, 4), "ppo_lstm": (2, 4), "sac": (6, 12), "ddpg": (6, 12), "dagger": (4, 8), "es": (2, 4)}  # the checkpoint of "first", the last iteration

# trains each algorithm of argv[3] ("ppo", "sac,ddpg", ...) into <root>/<algo>; "first" stops
# at the halfway checkpoint, "resume" continues; saves the final state to <algo>/state<i>.npz
TRAIN = f"""
import dataclasses, os, sys
import vasa.dist
vasa.dist.initialize_if_launched(heartbeat_timeout_s=10, shutdown_timeout_s=10)
import jax, numpy as np
from jax.experimental import multihost_utils
from vasa.algos import ddpg, es, offpolicy, ppo, sac
from vasa.distill import dagger, experts
from vasa.distill.distractors import DistractorConfig
from vasa.run import RunConfig

root, mode, algos = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
configs = {{{", ".join(f"{k!r}: {v}" for k, v in CONFIGS.items())}}}
stops = {STOPS!r}
for algo in algos:
    module = dict(ppo=ppo, ppo_lstm=ppo, sac=sac, ddpg=ddpg, dagger=dagger, es=es)[algo]
    base = getattr(module, "DEFAULT_RUN", offpolicy.DEFAULT_RUN) if module is not ppo else RunConfig()
    half, last = stops[algo]
    if mode == "resume":
        run = dataclasses.replace(base, resume=os.path.join(root, algo), progress=False)
    else:  # checkpoints at half and last; "first" stops at half
        run = dataclasses.replace(base, run_dir=os.path.join(root, algo), progress=False, eval_every=0,
                                  checkpoint_every=half, chunk=half if half <= 2 else half // 2, num_eval_envs=4,
                                  max_iterations=half if mode == "first" else None)
    expert = (experts.reach2d_expert(),) if module is dagger else ()
    _, state, rows = module.train(configs[algo], *expert, run)
    # the whole state, gathered (environments and replay buffers are split over the processes)
    gather = (lambda x: multihost_utils.process_allgather(x, tiled=True)) if jax.process_count() > 1 else (lambda x: x)
    leaves = [np.asarray(gather(x)) for x in jax.tree.leaves(state)]
    np.savez(os.path.join(root, algo, f"state{{jax.process_index()}}.npz"), *leaves)
    print(algo, "trained to iteration", rows[-1]["iteration"], "on", jax.device_count(), "devices")
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


AT_LEAST = {"ppo": 10, "ppo_lstm": 10, "sac": 40, "ddpg": 40, "dagger": 20, "es": 8}  # at least this many arrays in a saved state


def _same_state(algo, reference_dir, other_dir, processes=2):
    """The whole final state (gathered where split) equal, bitwise, in every process."""
    reference = np.load(os.path.join(reference_dir, algo, "state0.npz"))
    for p in range(processes):
        got = np.load(os.path.join(other_dir, algo, f"state{p}.npz"))
        assert len(got.files) == len(reference.files) > AT_LEAST[algo]
        for k in reference.files:
            np.testing.assert_array_equal(got[k], reference[k], err_msg=f"{algo}, process {p}, leaf {k}")


def _two_processes_equal_one(tmp_path, algo):
    """One process with two devices trains straight through; two processes train to a
    checkpoint halfway, then a two-process resume finishes: the final states are equal."""
    (tmp_path / "train.py").write_text(TRAIN)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    half, last = STOPS[algo]
    done = f"{algo} trained"
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
        for k in ("loss", "policy_loss", "value_loss", "kl", "grad_norm", "critic_loss", "fitness_mean", "student_loss",
                  "expert_queries", "eval_return", "env_steps"):
            assert a.get(k) == b.get(k), (k, a, b)
    assert os.path.exists(os.path.join(two, algo, "learning_curve.png"))


@pytest.mark.parametrize("algo", ["ppo", pytest.param("es", marks=pytest.mark.slow),
                                  pytest.param("ppo_lstm", marks=pytest.mark.slow),
                                  pytest.param("sac", marks=pytest.mark.slow),
                                  pytest.param("ddpg", marks=pytest.mark.slow),
                                  pytest.param("dagger", marks=pytest.mark.slow)])
def test_two_processes_equal_one_process_with_two_devices(tmp_path, algo):
    """Bitwise, the whole final state: with two participants an all-reduce adds the same two
    numbers whether XLA's in-process CPU collective or gloo across processes does it (float
    addition is commutative), and every other operation runs the same program on the same
    rows. (With more than two participants gloo's reduction order may differ from XLA's, and
    equality would hold to float32 rounding, ~1e-6 relative, instead.) ES gathers only its
    members' fitness; SAC's and DDPG's replay sampling is keyed by the device index, the same
    in both layouts, and their replay buffers and environments are split over the processes.
    DAgger's dataset is split likewise. (ES ~45 s, recurrent PPO, DAgger ~1.5 min, SAC and DDPG ~4 min each on the shared 2-core CPU, their compile
    dominates: slow.)"""
    _two_processes_equal_one(tmp_path, algo)


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
