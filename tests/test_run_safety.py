"""Run data is never lost and errors say what is wrong: unwritable run directories, failed
saves, resume with the run's own settings, existing runs, config.json edited after a
checkpoint, fallback past damaged checkpoints and --resume-step, SHA-256 sums, partial saves
of a killed run (SIGKILL during a save), corruption vs config-change messages, the last line
of a failed resume, config.json errors, the NaN stop and the run summary, and one flag
convention for every example script."""

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest
from conftest import xla_flags

from test_distributed_and_resume import ROOT, TINY, NanAfter, _tiny_config
from test_offpolicy import SAC_TINY
from vasa.algos import offpolicy, ppo, sac
from vasa.run import (Checkpointer, CheckpointError, CorruptCheckpointError, RunConfig, RunDirectoryError, RunLogger,
                      TrainingDiverged, finish_run)

CONFIG_SRC = TINY.format(iters=6, extra="surrogate='kl', target_update_interval=2")
CONFIG = eval(CONFIG_SRC, {"ppo": ppo})  # the program test_distributed_and_resume compiles too
RUN = {"progress": False, "eval_every": 0, "checkpoint_every": 2, "keep_checkpoints": 6}  # checkpoints 2, 4, 6
QUIET = RunConfig(progress=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An uninterrupted run: ``(run_dir, final state leaves)``."""
    run_dir = str(tmp_path_factory.mktemp("base") / "run")
    _, state, rows = ppo.train(CONFIG, RunConfig(run_dir=run_dir, **RUN))
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    return run_dir, jax.tree.leaves(jax.device_get(state))


def _copy(base, tmp_path, name="run"):
    return shutil.copytree(base[0], str(tmp_path / name))


def _same_as_base(state, base):
    leaves = jax.tree.leaves(jax.device_get(state))
    assert len(leaves) == len(base[1]) > 10
    for a, b in zip(leaves, base[1]):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if ppo.train gets as far as building the training state or compiling."""
    def boom(*args, **kwargs):
        raise AssertionError("got as far as building and compiling the training state")

    monkeypatch.setattr(ppo, "init", boom)
    monkeypatch.setattr(ppo, "make_train_step", boom)


def _data_file(run_dir, step):
    d = os.path.join(run_dir, "checkpoints", str(step), "state", "d")
    return os.path.join(d, min(os.listdir(d)))


def _flip_byte(path, at=100):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 1]))


def _subprocess(code, tmp_path, timeout):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(1))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=timeout, check=False)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _drop_sums(step_dir):
    """Make a checkpoint look as if written before SHA-256 sums existed."""
    if os.path.exists(os.path.join(step_dir, "SHA256SUMS")):
        os.remove(os.path.join(step_dir, "SHA256SUMS"))


def _last_line(text):
    return [line for line in text.splitlines() if line.strip()][-1]


# --------------------------------------------------------------------------- 1. unwritable


def test_unwritable_checkpoints_fail_before_compiling(tmp_path, no_compile):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("")  # a file where the directory should be
    with pytest.raises(RunDirectoryError, match="cannot write the run to .*checkpoints: it exists but is not a dir"):
        ppo.train(CONFIG, RunConfig(run_dir=str(run_dir), **RUN))


def test_a_failed_save_exits_with_the_error(tmp_path):
    # the directory turns into a file after the start-up check: orbax's save fails (it used to
    # print the error and wait on its threads for 300 s)
    code = f"""
import os, shutil
from vasa.algos import ppo
from vasa.run import RunConfig, checkpoint
save = checkpoint.Checkpointer.save
def failing_save(self, step, *args, **kwargs):
    if step == 4:
        shutil.rmtree(self.directory)
        open(self.directory, "w").close()
    return save(self, step, *args, **kwargs)
checkpoint.Checkpointer.save = failing_save
ppo.train({CONFIG_SRC}, RunConfig(run_dir="run", **{RUN!r}))
"""
    out = _subprocess(code, tmp_path, timeout=90)
    assert out.returncode != 0
    assert _last_line(out.stderr).startswith("vasa.run.checkpoint.CheckpointError: could not write checkpoint "
                                             f"{tmp_path}/run/checkpoints/4: NotADirectoryError"), out.stderr[-3000:]


# --------------------------------------------------------------------------- 2. run settings


def test_bare_resume_keeps_the_runs_own_settings_ppo(base, tmp_path, capsys):
    run_dir = _copy(base, tmp_path)
    for step in (4, 6):  # as if stopped after checkpoint 2
        shutil.rmtree(os.path.join(run_dir, "checkpoints", str(step)))
    # keep_checkpoints given explicitly, everything else as a bare --resume
    _, state, rows = ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False, keep_checkpoints=4))
    out = capsys.readouterr().out
    assert "with its saved run settings, except those given here: keep_checkpoints 6 -> 4\n" in out
    assert [r["iteration"] for r in rows] == [3, 4, 5, 6]
    assert Checkpointer(run_dir).steps() == [2, 4, 6]  # checkpoint_every=2 kept (the default is 50)
    saved = _read_json(os.path.join(run_dir, "config.json"))["run"]
    assert (saved["checkpoint_every"], saved["eval_every"], saved["keep_checkpoints"]) == (2, 0, 4)
    _same_as_base(state, base)


def test_bare_resume_keeps_the_runs_own_settings_sac(tmp_path, capsys):
    config = dataclasses.replace(SAC_TINY, num_envs=4, total_env_steps=320, learning_starts=40, batch_size=32,
                                 buffer_size=400, replay_ratio=0.5)  # 10 warm-up + 80 iterations
    run_dir = str(tmp_path / "sac")
    first = RunConfig(run_dir=run_dir, progress=False, eval_every=0, checkpoint_every=20, keep_checkpoints=5, chunk=10)
    sac.train(config, dataclasses.replace(first, max_iterations=40))
    # a bare --resume on the command line: offpolicy.DEFAULT_RUN (checkpoint_every=10_000, keep 3, chunk 50)
    _, _, rows = sac.train(config, dataclasses.replace(offpolicy.DEFAULT_RUN, resume=run_dir, progress=False))
    assert "except those given here" not in capsys.readouterr().out
    assert rows[0]["iteration"] == 41 and rows[-1]["iteration"] == 90
    assert Checkpointer(run_dir).steps() == [20, 40, 60, 80, 90]
    saved = _read_json(os.path.join(run_dir, "config.json"))["run"]
    assert {k: saved[k] for k in ("eval_every", "checkpoint_every", "keep_checkpoints", "chunk")} == {
        "eval_every": 0, "checkpoint_every": 20, "keep_checkpoints": 5, "chunk": 10}


# --------------------------------------------------------------------------- 3. existing runs


@pytest.mark.parametrize("marker", ["config.json", "metrics.csv", "checkpoints/2"])
def test_a_new_run_refuses_an_existing_run_directory(tmp_path, no_compile, marker):
    path = tmp_path / "run" / marker
    path.parent.mkdir(parents=True, exist_ok=True)
    if marker.startswith("checkpoints"):
        path.mkdir()
    else:
        path.write_text("{}")
    with pytest.raises(RunDirectoryError, match=f"already holds a run .*--resume {tmp_path}/run .*--overwrite"):
        ppo.train(CONFIG, RunConfig(run_dir=str(tmp_path / "run"), **RUN))
    assert path.exists()


def test_empty_or_new_directories_and_overwrite_are_accepted(base, tmp_path, no_compile, capsys):
    (tmp_path / "empty").mkdir()
    for run_dir in (tmp_path / "empty", tmp_path / "new"):
        with pytest.raises(AssertionError, match="got as far as"):
            ppo.train(CONFIG, RunConfig(run_dir=str(run_dir), **RUN))
    run_dir = _copy(base, tmp_path)
    with pytest.raises(AssertionError, match="got as far as"):
        ppo.train(CONFIG, RunConfig(run_dir=run_dir, overwrite=True, **RUN))
    assert "--overwrite: replaced the run" in capsys.readouterr().out
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == [] and not os.path.exists(run_dir + "/metrics.csv")


# --------------------------------------------------------------------------- 4. config.json vs checkpoint


def test_resume_refuses_a_config_json_edited_after_the_checkpoint(base, tmp_path, no_compile):
    run_dir = _copy(base, tmp_path)
    path = os.path.join(run_dir, "config.json")
    saved = _read_json(path)
    saved["ppo"]["normalize_observations"] = False  # same shapes, different training
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(CheckpointError, match=r"(?s)differs from the config saved with checkpoint 6 .*"
                       r"start a new run.*ppo.normalize_observations: config.json False, checkpoint True$"):
        ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))


# --------------------------------------------------------------------------- 5. fallback, --resume-step


def test_resume_falls_back_past_damaged_checkpoints(base, tmp_path, capsys):
    run_dir = _copy(base, tmp_path)
    _damage_everything(os.path.join(run_dir, "checkpoints", "6"))
    _flip_byte(_data_file(run_dir, 4))  # silent corruption
    _, state, rows = ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    out = capsys.readouterr().out
    assert f"skipping checkpoint 6 (moved to {run_dir}/damaged/6): corrupt or incomplete checkpoint at " \
           f"{run_dir}/checkpoints/6: the directory is empty" in out
    assert f"skipping checkpoint 4 (moved to {run_dir}/damaged/4): corrupt or incomplete checkpoint at " \
           f"{run_dir}/checkpoints/4: state/d/" in out and "does not match its SHA-256 sum in SHA256SUMS" in out
    assert f"resuming {run_dir} from checkpoint 2 (its SHA-256 sums match)" in out
    assert [r["iteration"] for r in rows] == [3, 4, 5, 6]
    assert sorted(os.listdir(os.path.join(run_dir, "damaged"))) == ["4", "6"]  # set aside, not deleted
    _same_as_base(state, base)


def test_resume_step_and_unverified_checkpoints(base, tmp_path, capsys):
    run_dir = _copy(base, tmp_path)
    _drop_sums(os.path.join(run_dir, "checkpoints", "4"))
    _, state, rows = ppo.train(CONFIG, RunConfig(resume=run_dir, resume_step=4, progress=False))
    out = capsys.readouterr().out
    assert f"moved checkpoint 6 (newer than --resume-step 4) to {run_dir}/superseded/6" in out
    assert f"resuming {run_dir} from checkpoint 4 (unverified: written without SHA-256 sums)" in out
    assert [r["iteration"] for r in rows] == [5, 6]
    _same_as_base(state, base)


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_over(base, tmp_path, capsys):
    run_dir = _copy(base, tmp_path)
    shutil.rmtree(os.path.join(run_dir, "checkpoints"))
    _, state, rows = ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    assert "(the run stopped before its first checkpoint): starting" in capsys.readouterr().out
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    _same_as_base(state, base)


# --------------------------------------------------------------------------- 6. checksums


def test_an_explicitly_chosen_corrupt_checkpoint_fails(base, tmp_path, no_compile):
    run_dir = _copy(base, tmp_path)
    _flip_byte(_data_file(run_dir, 4))
    with pytest.raises(CorruptCheckpointError, match=r"--resume-step 4 \(other checkpoints: \[2, 6\].*\): corrupt or "
                       f"incomplete checkpoint at {run_dir}/checkpoints/4: state/d/.* does not match its SHA-256"):
        ppo.train(CONFIG, RunConfig(resume=run_dir, resume_step=4, progress=False))


def test_a_run_without_an_intact_checkpoint_keeps_its_files(base, tmp_path, no_compile):
    run_dir = _copy(base, tmp_path)
    for step in (2, 4, 6):
        _flip_byte(_data_file(run_dir, step))
    with pytest.raises(CheckpointError, match=r"(?s)no intact checkpoint under .*--overwrite\):\n  corrupt or "
                       f"incomplete checkpoint at {run_dir}/checkpoints/6: .*checkpoints/2: "):
        ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    assert Checkpointer(run_dir).steps() == [2, 4, 6]


# --------------------------------------------------------------------------- 7 + kill: partial saves


def test_sigkill_during_a_save_then_resume(base, tmp_path, capsys):
    run_dir = str(tmp_path / "killed")
    # orbax has written checkpoint 4 into its temporary directory and is about to rename it
    code = f"""
import time
from orbax.checkpoint._src.path import atomicity
from vasa.algos import ppo
from vasa.run import RunConfig
finalize = atomicity.AtomicRenameTemporaryPath.finalize
async def paused(self):
    if self.get_final().name == "4":
        print("saving checkpoint 4", flush=True)
        time.sleep(600)
    return await finalize(self)
atomicity.AtomicRenameTemporaryPath.finalize = paused
ppo.train({CONFIG_SRC}, RunConfig(run_dir={run_dir!r}, **{RUN!r}))
"""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(1))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=tmp_path)
    guard = threading.Timer(120, proc.kill)
    guard.start()
    try:
        for line in proc.stdout:
            if line.startswith("saving checkpoint 4"):
                proc.kill()  # SIGKILL
                break
    finally:
        guard.cancel()
        proc.wait()
    assert proc.returncode == -9
    checkpoints = os.path.join(run_dir, "checkpoints")
    partial = [n for n in os.listdir(checkpoints) if n.startswith("4.orbax-checkpoint-tmp")]
    assert partial and Checkpointer(run_dir).steps() == [2]
    _, state, rows = ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    out = capsys.readouterr().out
    assert f"removed the partial checkpoint {checkpoints}/{partial[0]}" in out
    assert f"resuming {run_dir} from checkpoint 2" in out
    assert not [n for n in os.listdir(checkpoints) if "tmp" in n]
    assert [r["iteration"] for r in rows] == [3, 4, 5, 6]
    _same_as_base(state, base)
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        logged = f.read().splitlines()
    assert [r.split(",")[0] for r in logged[1:]] == [str(i) for i in range(1, 7)]


def test_partial_saves_are_removed_when_a_run_resumes(base, tmp_path, no_compile, capsys):
    run_dir = _copy(base, tmp_path)
    os.makedirs(os.path.join(run_dir, "checkpoints", "8.orbax-checkpoint-tmp-1234", "state"))
    with pytest.raises(AssertionError, match="got as far as"):
        ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    assert "removed the partial checkpoint" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["2", "4", "6"]


# --------------------------------------------------------------------------- 8. what is wrong


def _damage_metadata(step_dir):
    with open(os.path.join(step_dir, "state", "_METADATA"), "r+") as f:
        f.truncate(20)


def _damage_manifest(step_dir):
    with open(os.path.join(step_dir, "state", "manifest.ocdbt"), "r+") as f:
        f.truncate(10)


def _damage_data(step_dir):
    d = os.path.join(step_dir, "state", "d")
    with open(os.path.join(d, min(os.listdir(d))), "w"):  # zero bytes
        pass


def _damage_everything(step_dir):  # an empty step directory
    shutil.rmtree(step_dir)
    os.mkdir(step_dir)


@pytest.mark.parametrize("sums", [True, False], ids=["verified", "unverified"])
def test_corruption_and_config_changes_are_told_apart(base, tmp_path, sums):
    target = ppo.init(CONFIG)
    for damage in (_damage_metadata, _damage_manifest, _damage_data, _damage_everything):
        run_dir = _copy(base, tmp_path, damage.__name__)
        step_dir = os.path.join(run_dir, "checkpoints", "6")
        if not sums:
            _drop_sums(step_dir)
        damage(step_dir)
        ck = Checkpointer(run_dir)
        with pytest.raises(CorruptCheckpointError, match=f"corrupt or incomplete checkpoint at {step_dir}: "):
            ck.restore(target, step=6)
        ck.close()
    # a real mismatch names the arrays, their saved and expected shapes
    ck = Checkpointer(base[0])
    other = ppo.init(dataclasses.replace(CONFIG, policy_layers=(16, 32)))
    with pytest.raises(CheckpointError) as err:
        ck.restore(other, step=6)
    ck.close()
    assert not isinstance(err.value, CorruptCheckpointError) and "strict" not in str(err.value)
    assert "does not match this run's training state" in str(err.value)
    assert "params.policy.params.Dense_0.kernel: saved float32[3, 32], expected float32[3, 16]" in str(err.value)


# --------------------------------------------------------------------------- 9. the last line


def test_the_last_line_of_a_failed_resume_is_the_cause(base, tmp_path):
    run_dir = _copy(base, tmp_path)
    step_dir = os.path.join(run_dir, "checkpoints", "6")
    _drop_sums(step_dir)  # so that orbax itself reads the damaged file
    with open(_data_file(run_dir, 6), "r+") as f:
        f.truncate(100)
    code = f"""
from vasa.algos import ppo
from vasa.run import RunConfig
ppo.train({CONFIG_SRC}, RunConfig(resume={run_dir!r}, resume_step=6, progress=False))
"""
    out = _subprocess(code, tmp_path, timeout=120)
    assert out.returncode == 1
    last = _last_line(out.stderr)
    assert last.startswith("vasa.run.checkpoint.CorruptCheckpointError: --resume-step 6 ") and \
        f"corrupt or incomplete checkpoint at {step_dir}: " in last, out.stderr[-3000:]
    assert "Event loop is closed" not in out.stderr and "never retrieved" not in out.stderr


# --------------------------------------------------------------------------- 10. config.json


def test_config_json_problems_are_named(base, tmp_path, no_compile):
    run_dir = _copy(base, tmp_path)
    path = os.path.join(run_dir, "config.json")
    with open(path, "r+b") as f:
        f.seek(40)
        f.write(b"\xff")  # not UTF-8
    with pytest.raises(ValueError, match=f"cannot resume: {path} is not valid JSON/UTF-8 .*copy "
                       f"{run_dir}/checkpoints/6/config/metadata to {path}"):
        ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    os.remove(path)
    with pytest.raises(RunDirectoryError, match="its config.json is missing, although it holds metrics.csv and "
                       "checkpoints/ of a run"):
        ppo.train(CONFIG, RunConfig(resume=run_dir, progress=False))
    # a new run writes config.json before anything is compiled
    new = str(tmp_path / "new")
    with pytest.raises(AssertionError, match="got as far as"):
        ppo.train(CONFIG, RunConfig(run_dir=new, **RUN))
    assert _read_json(os.path.join(new, "config.json"))["ppo"]["num_envs"] == 32


# --------------------------------------------------------------------------- 13. NaN, summary, flags


@pytest.mark.parametrize("every,kept", [(5, "no checkpoint had been written yet."),
                                        (1, "the last good checkpoint (iteration 2) is kept in {}/checkpoints.")])
def test_the_nan_stop_names_the_checkpoint_kept(tmp_path, every, kept):
    from vasa.envs import register

    register("test/nan_after", NanAfter)
    config = _tiny_config(env="test/nan_after", total_env_steps=8 * 8 * 10)
    run_dir = str(tmp_path / "run")
    with pytest.raises(TrainingDiverged) as err:
        ppo.train(config, RunConfig(run_dir=run_dir, progress=False, checkpoint_every=every, eval_every=0))
    assert str(err.value).endswith("at iteration 3; training stopped; " + kept.format(run_dir)), str(err.value)


def test_the_summary_names_the_last_finite_evaluation(tmp_path, capsys):
    class Closed:
        def close(self):
            pass

    logger = RunLogger(str(tmp_path), total=4, progress=False)
    rows = [{"iteration": i, "env_steps": 10 * i, "eval_return": r} for i, r in ((1, np.nan), (2, -5.0), (3, np.nan))]
    for row in rows:
        logger.log(row)
    finish_run(logger, Closed(), rows, str(tmp_path), 1.0, 2.0)
    assert "last eval return -5.0 (iteration 2), 30 steps in 2 s" in capsys.readouterr().out
    logger = RunLogger(str(tmp_path / "none"), total=4, progress=False)
    logger.log(rows[0])
    finish_run(logger, Closed(), rows[:1], str(tmp_path / "none"), 1.0, 2.0)
    assert "no evaluation yet" in capsys.readouterr().out


@pytest.mark.parametrize("script,pixels", [("train_ppo", True), ("train_sac", True), ("train_ddpg", True),
                                           ("train_rubiksnet", False), ("train_es", False)])
def test_every_example_takes_the_same_boolean_flags(script, pixels, monkeypatch):
    spec = importlib.util.spec_from_file_location(f"example_{script}", os.path.join(ROOT, "examples", f"{script}.py"))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.parse(["--no-progress"]).run.progress is False
    assert module.parse(["--progress"]).run.progress is True
    if pixels:
        args = module.parse(["--pixels", "--no-progress"])
        assert getattr(args, script.split("_")[1]).pixels is True
    with pytest.raises(SystemExit):
        module.parse(["--progress", "False"])
