"""``vasa runs`` on real run directories: a run stopped by ``max_iterations`` and then
finished with ``vasa runs resume`` (its recorded command with ``--resume``), a running one
and a crashed one (SIGKILLed: its heartbeat goes stale); ``show``, ``compare`` (a PNG) and
the TensorBoard event files.

The default test drives the real :class:`RunSession` (heartbeat thread, markers, metrics,
orbax checkpoints, resume) from a toy loop that compiles nothing, so it takes seconds; the
``slow`` one does the same with PPO on toy/pendulum.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

TRAIN = """
import sys
from vasa.algos import ppo
from vasa.run import RunConfig

# {iters} iterations; `--resume DIR` continues a run (what `vasa runs resume` calls)
config = ppo.PPOConfig(env="toy/pendulum", num_envs=16, unroll_length=8, num_minibatches=2, num_epochs=1,
                       action_repeat=1, total_env_steps=16 * 8 * int(sys.argv[3] if len(sys.argv) > 3 else 4),
                       policy_layers=(16,), value_layers=(16,))
if sys.argv[1] == "--resume":
    run = RunConfig(resume=sys.argv[2], progress=False)
else:
    run = RunConfig(run_dir=sys.argv[1], progress=False, eval_every=1, num_eval_envs=2, checkpoint_every=2, chunk=1,
                    heartbeat_every=1, tensorboard=True, max_iterations=int(sys.argv[2]) or None)
ppo.train(config, run)
"""


# the trainer's side of a RunSession, without a model: iterations 1..4, a checkpoint every 2;
# `hang` keeps the session open after iteration 2, `die` SIGKILLs itself there
TOY = """
import os, signal, sys, time
import jax.numpy as jnp
from vasa.algos.ppo_config import PPOConfig
from vasa.run import RunConfig
from vasa.run.rundir import prepare_run

config = PPOConfig(env="toy/pendulum")
if sys.argv[1] == "--resume":
    run, mode = RunConfig(resume=sys.argv[2], progress=False), "resume"
else:
    mode = sys.argv[2]
    run = RunConfig(run_dir=sys.argv[1], progress=False, heartbeat_every=1, tensorboard=True,
                    max_iterations=2 if mode == "stop" else None)
plan = prepare_run(config, run, "ppo", defaults=RunConfig())
with plan.open() as session:
    start, state = session.restore({"w": jnp.zeros(3)})
    session.begin(4, start)
    stop = 4 if run.max_iterations is None else min(4, start + run.max_iterations)
    for it in range(start + 1, stop + 1):
        state = {"w": state["w"] + 1}
        session.wall += 1.5
        session.log({"iteration": it, "env_steps": 100 * it, "wall_time": session.wall, "loss": 1.0 / it,
                     "episode_return": -100.0 + 10 * it, "eval_return": -50.0 + 5 * it if it < 4 else -60.0})
        if it % 2 == 0 or it == stop:
            session.save(it, state)
        if it == 2 and mode == "hang":
            print("logged", flush=True)
            time.sleep(600)
        if it == 2 and mode == "die":
            os.kill(os.getpid(), signal.SIGKILL)
print("done at", it, float(state["w"][0]))
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VASA_", "SLURM_", "OMPI_"))}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONUNBUFFERED="1")
    return env


def _vasa(args, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vasa", "runs", *args], capture_output=True, text=True, cwd=cwd,
                          env=_env(), timeout=timeout)


def _ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout

def _check_show(done, dead, script: str, tmp_path) -> None:
    """``vasa runs show`` of a finished run (4 of 4 iterations, checkpoints 2 and 4, started by
    ``script``) and of a crashed one."""
    out = _ok(_vasa(["show", done], tmp_path))
    assert "status:    finished (iteration 4 of 4)" in out, out
    assert '"env": "toy/pendulum"' in out and "last metrics (iteration 4" in out and "eval_return" in out, out
    assert "checkpoints: 2, 4" in out and script in out
    out = _ok(_vasa(["show", dead], tmp_path))
    assert "status:    crashed (no heartbeat for" in out, out

def _check_compare_and_tensorboard(live, dead, done, tmp_path) -> None:
    """``vasa runs compare`` writes a PNG, never overwrites one, refuses an unknown metric; the
    finished run wrote TensorBoard event files of the same metrics."""
    png = tmp_path / "curves.png"
    _ok(_vasa(["compare", live, dead, done, "-o", str(png)], tmp_path))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    proc = _vasa(["compare", done, "-o", str(png)], tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr  # never overwritten without --force
    proc = _vasa(["compare", done, "-o", str(tmp_path / "x.png"), "--metric", "nope"], tmp_path)
    assert proc.returncode == 2 and "--metric='nope' is not allowed" in proc.stderr
    events = [f for f in os.listdir(os.path.join(done, "tensorboard")) if f.startswith("events.out.tfevents")]
    assert events and all(b"eval_return" in open(os.path.join(done, "tensorboard", f), "rb").read() for f in events)




def _rows(run_dir) -> int:
    path = os.path.join(run_dir, "metrics.csv")
    return max(0, len(open(path).read().splitlines()) - 1) if os.path.exists(path) else 0


def _table(out: str) -> dict:
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["run", "env", "algorithm", "status"], out
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_list_show_compare_resume_toy(tmp_path):
    from vasa.run.manager import summarize

    (tmp_path / "toy.py").write_text(TOY)
    root = tmp_path / "runs"
    live, dead, done = (str(root / name) for name in ("live", "dead", "done"))
    hang = subprocess.Popen([sys.executable, "toy.py", live, "hang"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        killed = subprocess.run([sys.executable, "toy.py", dead, "die"], cwd=tmp_path, env=_env(),
                                capture_output=True, text=True, timeout=120)
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        t_killed = time.monotonic()
        _ok(subprocess.run([sys.executable, "toy.py", done, "stop"], cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=120))
        assert hang.stdout.readline().strip() == "logged"
        table = _table(_ok(_vasa(["list", str(root)], tmp_path)))
        assert table["done"][3] == "stopped" and table["live"][3] == "running", table
        out = _ok(_vasa(["resume", done], tmp_path))
        assert f"toy.py --resume {os.path.abspath(done)}" in out and "done at 4 4.0" in out, out
        while summarize(dead)["status"] != "crashed":  # stale 10 s after its last heartbeat
            assert time.monotonic() - t_killed < 60, summarize(dead)
            time.sleep(0.5)
        table = _table(_ok(_vasa(["list", str(root)], tmp_path)))
        assert list(table) == ["dead", "done", "live"]
        assert [table[n][3] for n in ("dead", "done", "live")] == ["crashed", "finished", "running"], table
        # run, env, algorithm, status, env steps, last eval, best eval, wall time
        assert table["done"] == ["done", "toy/pendulum", "ppo", "finished", "400", "-60.0", "-35.0", "0:00:06"], table
        assert table["dead"][4:] == ["200", "-40.0", "-40.0", "0:00:03"], table
        assert summarize(live)["status"] == "running"
    finally:
        hang.kill()
        hang.wait()

    _check_show(done, dead, "toy.py", tmp_path)

    _check_compare_and_tensorboard(live, dead, done, tmp_path)


@pytest.mark.slow
def test_list_show_compare_resume_ppo(tmp_path):
    from vasa.run.manager import summarize

    (tmp_path / "train.py").write_text(TRAIN)
    root = tmp_path / "runs"
    live, dead, done = (str(root / name) for name in ("live", "dead", "done"))
    # two long runs (100000 iterations): one keeps running, one is killed
    procs = [subprocess.Popen([sys.executable, "train.py", d, "0", "100000"], cwd=tmp_path, env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) for d in (live, dead)]
    try:
        # meanwhile a short run stops after 2 of its 4 iterations (resumable)
        _ok(subprocess.run([sys.executable, "train.py", done, "2"], cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=180))
        deadline = time.monotonic() + 180
        while _rows(live) < 2 or _rows(dead) < 2:
            assert all(p.poll() is None for p in procs), "a long run stopped early"
            assert time.monotonic() < deadline, "the long runs did not start logging"
            time.sleep(0.5)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        table = _table(_ok(_vasa(["list", str(root)], tmp_path)))
        assert table["done"][3] == "stopped" and table["live"][3] == "running", table
        while summarize(dead)["status"] != "crashed":  # stale 10 s after its last heartbeat
            assert time.monotonic() < deadline + 60, summarize(dead)
            time.sleep(1)
        assert summarize(live)["status"] == "running"

        # resume the stopped run through its recorded command: it finishes (4 iterations)
        out = _ok(_vasa(["resume", str(done)], tmp_path, timeout=180))
        assert f"train.py --resume {done}" in out, out
        table = _table(_ok(_vasa(["list", str(root)], tmp_path)))
        assert [table[n][3] for n in ("dead", "done", "live")] == ["crashed", "finished", "running"], table
        assert list(table) == ["dead", "done", "live"]
        row = table["done"]
        assert row[1:3] == ["toy/pendulum", "ppo"] and row[4] == str(4 * 16 * 8), row  # env steps
        assert row[5] != "-" and float(row[6]) >= float(row[5])  # last eval, best eval
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    _check_show(done, dead, "train.py", tmp_path)

    _check_compare_and_tensorboard(live, dead, done, tmp_path)


def test_status_rules(tmp_path):
    """Heartbeat and finished markers, read back (no training)."""
    from vasa.run.manager import resume_command
    from vasa.run.status import Heartbeat, run_status, write_finished

    run = str(tmp_path)
    assert run_status(run)[0] == "unknown"
    beat = Heartbeat(run, every_s=60)
    beat.update(iteration=3, total=10)
    assert run_status(run)[0] == "running"
    assert run_status(run, now=time.time() + 200)[0] == "crashed"  # 3 periods without a heartbeat
    beat.close(error=FloatingPointError("non-finite loss at iteration 3\nmore"))
    assert run_status(run) == ("crashed", "FloatingPointError: non-finite loss at iteration 3")
    Heartbeat(run, every_s=60).close()
    write_finished(run, 10, 10)
    assert run_status(run)[0] == "finished"
    # a run started from Python (no script taking --resume) resumes through the trainer in-process
    (tmp_path / "config.json").write_text('{"sac": {"env": "toy/pendulum"}, "run": {}}')
    command, _, note = resume_command(run)
    assert command[1:] == ["-m", "vasa", "runs", "resume", os.path.abspath(run), "--in-process"], command
    assert "vasa.algos.sac.train" in note
    (tmp_path / "config.json").write_text('{"dagger": {}, "run": {}}')
    with pytest.raises(ValueError, match="algorithm 'dagger' is none of"):
        resume_command(run)
