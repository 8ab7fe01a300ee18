"""``vasa launch slurm | mpi | k8s`` on one machine: the processes each launcher starts are
connected by JAX's own cluster detection (``jax.distributed.initialize()`` without
arguments, through ``vasa.dist.initialize_if_launched``), and a psum crosses them.

* SLURM: the generated sbatch script itself runs under bash with a stand-in ``srun`` that
  starts ``SLURM_NTASKS`` tasks with the variables a real ``srun`` sets (``SLURM_JOB_ID``,
  ``SLURM_STEP_NODELIST=localhost``, ``SLURM_NTASKS``, ``SLURM_PROCID``, ``SLURM_LOCALID``).
* Open MPI: ``mpirun -np 2`` for real (Debian's ``openmpi-bin``); skipped when absent.
* Kubernetes: the manifest deserialised into the Kubernetes API models (the ``kubernetes``
  client) and checked for what JAX's ``K8sCluster`` reads.
"""

import os
import shutil
import subprocess
import sys

import pytest

# connects through JAX's detection, then sums 1 + 2 across the two processes
PROGRAM = """
import vasa.dist
vasa.dist.initialize_if_launched(heartbeat_timeout_s=10, shutdown_timeout_s=10, verbose=False)
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from vasa.dist import make_mesh, psum
mesh = make_mesh()
x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), np.full(1, jax.process_index() + 1, np.float32))
total = jax.jit(jax.shard_map(lambda x: psum(x), mesh=mesh, in_specs=P("data"), out_specs=P()))(x)
print(f"env={vasa.dist.cluster_environment()} index={jax.process_index()} count={jax.process_count()} "
      f"psum={float(total[0])}", flush=True)
"""

# what a real srun does for this test: start SLURM_NTASKS tasks with the step's variables
FAKE_SRUN = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
while args and args[0].startswith("--"):
    args = args[1:]
n = int(os.environ["SLURM_NTASKS"])
procs = [subprocess.Popen(args, env={{**os.environ, "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_NUM_NODES": "1",
                                      "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i), "SLURM_NODEID": "0"}})
         for i in range(n)]
sys.exit(max(abs(p.wait()) for p in procs))
"""

FAKE_SBATCH = """#!/bin/sh
echo "Submitted batch job 4242 ($1)"
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VASA_", "SLURM_", "OMPI_", "PMIX_", "JOB_COMPLETION_INDEX", "KUBERNETES_"))}
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


def _vasa(args, cwd, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vasa", *args], capture_output=True, text=True, cwd=cwd,
                          env=env or _env(), timeout=timeout)


def _free_slurm_job_id() -> str:
    """A job id whose coordinator port (JAX: ``id % 4096 + 61440``) is free now."""
    from vasa.dist.launch import free_port

    for _ in range(100):
        port = free_port()
        if port >= 61440:
            return str(port - 61440 + 4096 * 7)
    import socket

    for port in range(61440, 65536):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return str(port - 61440)
            except OSError:
                continue
    pytest.skip("no free port in 61440..65535 for the SLURM coordinator")


def _connected(out: str, env: str) -> None:
    for i in range(2):
        assert f"env={env} index={i} count=2 psum=3.0" in out, out


def test_slurm_script_runs_two_connected_tasks(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    script = tmp_path / "job.sbatch"
    args = ["launch", "slurm", "--nodes", "1", "--gpus-per-node", "0", "--tasks-per-node", "2", "--time", "00:10:00",
            "--partition", "debug", "--account", "rl", "-o", str(script), "--", sys.executable, "prog.py"]
    proc = _vasa(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote the sbatch script {script}" in proc.stdout
    text = script.read_text()
    for line in ("#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=2", "#SBATCH --time=00:10:00",
                 "#SBATCH --partition=debug", "#SBATCH --account=rl", f"srun --kill-on-bad-exit=1 {sys.executable} prog.py"):
        assert line in text.splitlines(), text
    assert "--gpus-per-node" not in text

    # never overwritten without --force
    script.write_text("# the user's own script\n")
    proc = _vasa(args, tmp_path)
    assert proc.returncode == 2 and "already exists; pass --force" in proc.stderr, proc.stderr
    assert script.read_text() == "# the user's own script\n"
    assert _vasa(args[:-3] + ["--force", "--", sys.executable, "prog.py"], tmp_path).returncode == 0
    assert "srun " in script.read_text()

    # run the script as sbatch would (the batch step's SLURM_JOB_ID and SLURM_NTASKS) with srun starting the tasks
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN.format(python=sys.executable))
    (bin_dir / "srun").chmod(0o755)
    env = _env(SLURM_JOB_ID=_free_slurm_job_id(), SLURM_NTASKS="2", SLURM_JOB_NUM_NODES="1",
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _connected(proc.stdout, "slurm")


def test_slurm_submit_and_errors(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = _env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = _vasa(["launch", "slurm", "-N", "2", "--submit", "--", "python", "train.py"], tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Submitted batch job 4242" in proc.stdout
    text = (tmp_path / "vasa-job.sbatch").read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=8" in text and "#SBATCH --gpus-per-node=8" in text

    # no sbatch on PATH: the error names it (the script is written first)
    env = _env(PATH=os.path.dirname(sys.executable))
    if shutil.which("sbatch", path=env["PATH"]):
        pytest.skip("sbatch is installed next to python")
    proc = _vasa(["launch", "slurm", "-o", "b.sbatch", "--submit", "--", "python", "train.py"], tmp_path, env=env)
    assert proc.returncode == 2 and "needs the program 'sbatch'" in proc.stderr, proc.stderr
    assert (tmp_path / "b.sbatch").exists()
    proc = _vasa(["launch", "slurm", "-o", "c.sbatch", "--time", "soon", "--", "python"], tmp_path)
    assert proc.returncode == 2 and "--time='soon' is not allowed" in proc.stderr, proc.stderr
    proc = _vasa(["launch", "slurm", "-o", "d.sbatch"], tmp_path)
    assert proc.returncode == 2 and "no command given" in proc.stderr, proc.stderr


def test_mpirun_two_ranks(tmp_path):
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not installed (Debian/Ubuntu: apt-get install openmpi-bin; .ci/run installs it as root)")
    (tmp_path / "prog.py").write_text(PROGRAM)
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    proc = _vasa(["launch", "mpi", "-n", "2", "--oversubscribe", *root, "--", sys.executable, "prog.py"], tmp_path,
                 timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _connected(proc.stdout, "ompi")
    # a failing rank fails the launch
    proc = _vasa(["launch", "mpi", "-n", "2", "--oversubscribe", *root, "--", sys.executable, "-c",
                  "import sys; sys.exit(3)"], tmp_path, timeout=120)
    assert proc.returncode != 0


def test_mpi_missing_mpirun(tmp_path):
    env = _env(PATH=str(tmp_path))
    proc = _vasa(["launch", "mpi", "-n", "2", "--", "python", "x.py"], tmp_path, env=env)
    assert proc.returncode == 2 and "needs the program 'mpirun'" in proc.stderr and "openmpi-bin" in proc.stderr, \
        proc.stderr


def test_k8s_manifest_matches_the_api_and_jax_detection(tmp_path):
    k8s = pytest.importorskip("kubernetes", reason="pip install kubernetes (the test extra)")
    from vasa.dist.launchers import load_yaml

    out = tmp_path / "job.yaml"
    proc = _vasa(["launch", "k8s", "--image", "ghcr.io/x/vasa:1", "--pods", "4", "--gpus-per-pod", "8", "--name",
                  "ppo-run", "--namespace", "rl", "--env", "XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true",
                  "-o", str(out), "--", "python", "examples/train_ppo.py", "--env", "brax/ant"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    docs = load_yaml(out.read_text())
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding", "Service", "Job"]
    api = k8s.client.ApiClient()
    models = {"ServiceAccount": "V1ServiceAccount", "Role": "V1Role", "RoleBinding": "V1RoleBinding",
              "Service": "V1Service", "Job": "V1Job"}
    objs = {}
    for doc in docs:
        obj = api._ApiClient__deserialize(doc, models[doc["kind"]])  # validates required fields and types
        # the models drop unknown keys: a round trip equal to the document means every key is a real field
        assert api.sanitize_for_serialization(obj) == doc, doc["kind"]
        assert obj.metadata.namespace == "rl"
        objs[doc["kind"]] = obj
    job, svc, role, binding, sa = (objs[k] for k in ("Job", "Service", "Role", "RoleBinding", "ServiceAccount"))

    # what jax._src.clusters.k8s_cluster.K8sCluster reads
    assert job.spec.completion_mode == "Indexed"  # JOB_COMPLETION_INDEX is the process id
    assert job.spec.parallelism == job.spec.completions == 4  # get_process_count() is spec.parallelism
    assert job.spec.backoff_limit == 0 and job.spec.template.spec.restart_policy == "Never"
    pod = job.spec.template.spec
    assert pod.subdomain == svc.metadata.name  # coordinator: <job>-0.<subdomain>
    assert svc.spec.cluster_ip == "None" and svc.spec.publish_not_ready_addresses
    assert svc.spec.selector == {"job-name": job.metadata.name}  # the label the Job controller puts on its pods
    assert svc.spec.ports[0].port == 55527  # K8sCluster._coordinator_port
    (container,) = pod.containers
    assert container.command == ["python", "examples/train_ppo.py", "--env", "brax/ant"]
    assert container.resources.requests["nvidia.com/gpu"] == container.resources.limits["nvidia.com/gpu"] == "8"
    assert container.env[0].name == "XLA_FLAGS"
    # the pod's service account may read its pod (list by IP), its Job (get) and the services
    assert pod.service_account_name == sa.metadata.name
    assert binding.subjects[0].name == sa.metadata.name and binding.role_ref.name == role.metadata.name
    granted = {(g, r): set(rule.verbs) for rule in role.rules for g in rule.api_groups for r in rule.resources}
    for need in (("", "pods"), ("batch", "jobs"), ("", "services")):
        assert {"get", "list", "watch"} <= granted[need], need

    # never overwritten without --force; bad names are refused before writing
    proc = _vasa(["launch", "k8s", "--image", "x", "--pods", "2", "-o", str(out), "--", "python"], tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = _vasa(["launch", "k8s", "--image", "x", "--pods", "2", "--name", "PPO_run", "-o", "y.yaml", "--", "py"],
                 tmp_path)
    assert proc.returncode == 2 and "--name='PPO_run' is not allowed" in proc.stderr
    assert not (tmp_path / "y.yaml").exists()


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"VASA_COORDINATOR": "127.0.0.1:1"}, "vasa"),
    ({"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "2", "SLURM_PROCID": "0",
      "SLURM_LOCALID": "0"}, "slurm"),
    ({"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
      "SLURM_LOCALID": "0"}, None),  # one task: a plain process
    ({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}, None),  # the batch script itself, outside srun
    ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "2"}, "ompi"),
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),  # an ordinary pod
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "JOB_COMPLETION_INDEX": "3"}, "k8s"),
])
def test_cluster_environment(monkeypatch, env, expected):
    from vasa.dist import cluster_environment

    for k in list(os.environ):
        if k.startswith(("VASA_", "SLURM_", "OMPI_", "KUBERNETES_", "JOB_COMPLETION_INDEX")):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cluster_environment() == expected


def test_examples_join_through_cluster_detection():
    """The training scripts call ``initialize_if_launched`` (so srun / mpirun / k8s runs connect)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("train_ppo.py", "train_sac.py", "train_ddpg.py"):
        text = open(os.path.join(root, "examples", name)).read()
        assert "vasa.dist.initialize_if_launched()" in text, name
