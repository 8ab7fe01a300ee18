"""Many processes on this one machine, connected by ``vasa.dist.initialize`` over localhost
(gloo CPU collectives): PPO as two processes with one CPU device each equals one process with
two devices (including a two-process checkpoint and resume); a killed process makes its peer
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

TRAIN = f"""
import os, sys
import vasa.dist
if vasa.dist.launched():
    vasa.dist.initialize(heartbeat_timeout_s=10, shutdown_timeout_s=10)
import jax, numpy as np
from vasa.algos import ppo
from vasa.run import RunConfig

run_dir, mode = sys.argv[1], sys.argv[2]
config = {CONFIG.format(iters=4)}
if mode == "resume":
    run = RunConfig(resume=run_dir, progress=False)
else:  # checkpoints at 2 and 4; "first" stops after 2
    run = RunConfig(run_dir=run_dir, progress=False, eval_every=0, checkpoint_every=2, chunk=2,
                    max_iterations=2 if mode == "first" else None)
_, state, rows = ppo.train(config, run)
# replicated over the mesh: every process holds the whole parameters
leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves((state.params, state.normalizer, state.beta))]
np.savez(os.path.join(run_dir, f"params{{jax.process_index()}}.npz"), *leaves)
print("trained to iteration", rows[-1]["iteration"], "on", jax.device_count(), "devices")
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


def _run(args, cwd, devices=1, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=_env(devices), cwd=cwd, timeout=timeout)


def _launch(n, command, cwd, timeout=240) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "vasa", "launch", "local", "--processes", str(n), "--", *command], cwd, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_two_processes_equal_one_process_with_two_devices(tmp_path):
    """Bitwise: with two participants an all-reduce adds the same two numbers whether XLA's
    in-process CPU collective or gloo across processes does it (float addition is
    commutative), and every other operation runs the same program on the same rows. (With
    more than two participants gloo's reduction order may differ from XLA's, and equality
    would hold to float32 rounding, ~1e-6 relative, instead.)"""
    (tmp_path / "train.py").write_text(TRAIN)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    out = _ok(_run([sys.executable, "train.py", one, "full"], tmp_path, devices=2))
    assert "trained to iteration 4 on 2 devices" in out

    # two processes: 2 iterations and a checkpoint, then a two-process resume to 4
    out = _ok(_launch(2, [sys.executable, "train.py", two, "first"], tmp_path))
    for i in range(2):
        assert f"[{i}] vasa.dist: process {i} of 2, 1 local device(s), 2 global (cpu)" in out, out
        assert f"[{i}] trained to iteration 2 on 2 devices" in out, out
    assert sorted(os.listdir(os.path.join(two, "checkpoints"))) == ["2"]
    state_dir = os.path.join(two, "checkpoints", "2", "state")
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(state_dir)), os.listdir(state_dir)
    out = _ok(_launch(2, [sys.executable, "train.py", two, "resume"], tmp_path))
    for i in range(2):
        assert f"[{i}] resuming {two} from checkpoint 2 (its SHA-256 sums match)" in out, out
        assert f"[{i}] trained to iteration 4 on 2 devices" in out, out
    assert out.count("run directory:") == 1 and "[0] run directory:" in out  # process 0 alone reports

    reference = np.load(os.path.join(one, "params0.npz"))
    for p in range(2):
        got = np.load(os.path.join(two, f"params{p}.npz"))
        assert len(got.files) == len(reference.files) > 10
        for k in reference.files:
            np.testing.assert_array_equal(got[k], reference[k], err_msg=f"process {p}, leaf {k}")
    # one writer: every iteration exactly once, the same learning metrics
    rows_one, rows_two = _rows(one), _rows(two)
    assert [r["iteration"] for r in rows_two] == ["1", "2", "3", "4"]
    for a, b in zip(rows_one, rows_two):
        for k in ("loss", "policy_loss", "value_loss", "kl", "grad_norm", "eval_return", "env_steps"):
            assert a[k] == b[k], (k, a, b)
    assert os.path.exists(os.path.join(two, "learning_curve.png"))


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
