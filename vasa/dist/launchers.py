"""Cluster launchers: ``vasa launch slurm | mpi | k8s``. Each starts (or writes the job file
that starts) one process per accelerator or per machine, and relies on JAX's own cluster
detection (``jax.distributed.initialize()`` with no arguments, which
:func:`vasa.dist.initialize_if_launched` calls when :func:`vasa.dist.cluster_environment`
finds the cluster's variables) to connect them. vasa invents no scheduler.

* :func:`slurm_script` writes an sbatch script: ``--nodes``, one task per GPU
  (``--ntasks-per-node`` = GPUs per node), ``--time``, ``--partition``, optional ``--account``,
  and the command run by ``srun``. JAX reads ``SLURM_JOB_ID`` (the coordinator port is
  ``job id % 4096 + 61440``), ``SLURM_STEP_NODELIST`` (its first host is the coordinator),
  ``SLURM_NTASKS``, ``SLURM_PROCID`` and ``SLURM_LOCALID`` (the GPU a task uses).
* :func:`mpirun_command` runs the command under Open MPI's ``mpirun -np N``; JAX reads
  ``OMPI_MCA_orte_hnp_uri`` (the launcher's address: the coordinator's host),
  ``OMPI_COMM_WORLD_SIZE``, ``OMPI_COMM_WORLD_RANK`` and ``OMPI_COMM_WORLD_LOCAL_RANK``.
* :func:`k8s_manifest` writes a Kubernetes Indexed Job (``completionMode: Indexed``,
  ``completions = parallelism = N``, ``backoffLimit: 0``, ``restartPolicy: Never``, GPU
  requests), a headless Service named as the pods' ``subdomain`` (the coordinator is
  ``<job>-0.<subdomain>:55527``), and a ServiceAccount with a Role allowing get/list/watch on
  pods, services and jobs: JAX finds its pod by IP, its Job by the pod's ``job-name`` label
  (``parallelism`` is the process count) and its rank in ``JOB_COMPLETION_INDEX``. The
  container image must have vasa and the ``kubernetes`` Python package installed.

Files are never overwritten unless ``force=True`` (``--force``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

K8S_COORDINATOR_PORT = 55527  # JAX's K8sCluster._coordinator_port
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class LauncherError(ValueError):
    """A launcher cannot do what was asked; the message names the argument or the missing program."""


def write_new_file(path: str, text: str, force: bool = False, mode: int | None = None) -> str:
    """Write ``text`` to ``path`` unless it exists (``force`` replaces it); return the absolute path."""
    if os.path.exists(path) and not force:
        raise LauncherError(f"{path} already exists; pass --force to replace it, or choose another --output.")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return os.path.abspath(path)


def require_program(name: str, what: str) -> str:
    """The full path of the program ``name`` on ``PATH``; a :class:`LauncherError` naming it (and ``what`` needs it) if absent."""
    found = shutil.which(name)
    if found is None:
        raise LauncherError(f"{what} needs the program {name!r}, which is not on PATH ({os.environ.get('PATH', '')}).")
    return found


def _positive(name: str, value: int, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise LauncherError(f"{name}={value!r} is not allowed: it must be an integer >= {0 if allow_zero else 1}.")
    return value


def _check_command(command: list[str], where: str) -> list[str]:
    if not command:
        raise LauncherError(f"no command given: vasa launch {where} [OPTIONS] -- COMMAND [ARGS...]")
    return list(command)


# ---------------------------------------------------------------------------------------- SLURM

def slurm_script(command: list[str], nodes: int = 1, gpus_per_node: int = 8, tasks_per_node: int | None = None,
                 time: str = "01:00:00", partition: str | None = None, account: str | None = None,
                 job_name: str = "vasa", cpus_per_task: int | None = None, output: str = "vasa-%j.out",
                 workdir: str | None = None, setup: tuple[str, ...] = ()) -> str:
    """An sbatch script that runs ``command`` as ``nodes * tasks_per_node`` connected processes.

    Args:
      command: the program and its arguments (each task runs it).
      nodes: machines (``--nodes``).
      gpus_per_node: GPUs requested on each node (``--gpus-per-node``; 0 for CPU nodes).
      tasks_per_node: processes per node (default: ``gpus_per_node``, one process per GPU; 1
        without GPUs). JAX gives task ``SLURM_LOCALID`` the GPU of that index.
      time: wall-clock limit, ``[D-]HH:MM:SS`` (``--time``).
      partition, account: ``--partition`` / ``--account`` (left out when ``None``).
      job_name, cpus_per_task, output: ``--job-name``, ``--cpus-per-task``, ``--output``.
      workdir: directory the job runs in (default: the current one).
      setup: shell lines run before ``srun`` (``module load ...``, ``source .venv/bin/activate``).
    """
    command = _check_command(command, "slurm")
    _positive("--nodes", nodes)
    _positive("--gpus-per-node", gpus_per_node, allow_zero=True)
    tasks = tasks_per_node if tasks_per_node is not None else max(gpus_per_node, 1)
    _positive("--tasks-per-node", tasks)
    if not _TIME.match(str(time)):
        raise LauncherError(f"--time={time!r} is not allowed: use [D-]HH:MM:SS, HH:MM or minutes (SLURM's formats).")
    header = (f"# written by `vasa launch slurm`: {nodes} node(s) x {tasks} task(s), one JAX process per task, "
              "connected by JAX's SLURM detection")
    lines = ["#!/bin/bash", header, f"#SBATCH --job-name={job_name}",
             f"#SBATCH --nodes={nodes}", f"#SBATCH --ntasks-per-node={tasks}"]
    if gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={gpus_per_node}")
    if cpus_per_task is not None:
        lines.append(f"#SBATCH --cpus-per-task={_positive('--cpus-per-task', cpus_per_task)}")
    lines.append(f"#SBATCH --time={time}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    lines += [f"#SBATCH --output={output}", "", "set -euo pipefail", f"cd {shlex.quote(workdir or os.getcwd())}",
              *setup,
              "# each task: jax.distributed.initialize() reads SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_NTASKS,",
              "# SLURM_PROCID and SLURM_LOCALID (vasa.dist.initialize_if_launched); one failed task ends the step",
              "srun --kill-on-bad-exit=1 " + shlex.join(command), ""]
    return "\n".join(lines)


def srun_command(script: str) -> list[str]:
    """The command a script from :func:`slurm_script` runs in each task (after ``srun`` and its options)."""
    line = next((x for x in script.splitlines() if x.startswith("srun ")), None)
    if line is None:
        raise LauncherError("no srun line in the script")
    words = shlex.split(line)[1:]
    while words and words[0].startswith("--"):
        words = words[1:]
    return words


def submit_slurm(path: str) -> str:
    """``sbatch PATH``; returns sbatch's output ("Submitted batch job N")."""
    sbatch = require_program("sbatch", "--submit")
    proc = subprocess.run([sbatch, path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LauncherError(f"sbatch {path} failed with status {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


# ------------------------------------------------------------------------------------ Open MPI

def mpirun_command(command: list[str], processes: int, hostfile: str | None = None, oversubscribe: bool = False,
                   allow_run_as_root: bool = False, env: tuple[str, ...] = (), extra: tuple[str, ...] = (),
                   mpirun: str = "mpirun") -> list[str]:
    """The ``mpirun`` command line that runs ``command`` as ``processes`` ranks (Open MPI).

    Ranks are not bound to cores (``--bind-to none``: Open MPI would otherwise pin each rank
    to one core, starving XLA's thread pools). ``env`` names variables exported to every rank
    (``-x NAME``); ``extra`` is passed to mpirun as is.
    """
    command = _check_command(command, "mpi")
    _positive("--processes", processes)
    out = [mpirun, "-np", str(processes), "--bind-to", "none"]
    if hostfile:
        if not os.path.isfile(hostfile):
            raise LauncherError(f"--hostfile={hostfile!r} is not allowed: no such file.")
        out += ["--hostfile", hostfile]
    if oversubscribe:
        out.append("--oversubscribe")
    if allow_run_as_root:
        out.append("--allow-run-as-root")
    for name in env:
        out += ["-x", name]
    return out + list(extra) + command


def launch_mpi(command: list[str], processes: int, **kwargs) -> int:
    """Run ``command`` under Open MPI's ``mpirun`` (see :func:`mpirun_command`); returns its status
    (mpirun stops every rank when one fails and exits non-zero)."""
    mpirun = require_program("mpirun", "vasa launch mpi (Open MPI; on Debian/Ubuntu: apt-get install openmpi-bin)")
    args = mpirun_command(command, processes, mpirun=mpirun, **kwargs)
    version = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" not in version and "OpenRTE" not in version:
        raise LauncherError(f"{mpirun} is not Open MPI ({version.strip().splitlines()[:1]}); JAX detects only Open "
                            "MPI's mpirun (or use mpi4py with jax.distributed.initialize(spec_detection_method='mpi4py')).")
    return subprocess.call(args)


# ---------------------------------------------------------------------------------- Kubernetes

def k8s_manifest(command: list[str], image: str, pods: int, gpus_per_pod: int = 8, name: str = "vasa",
                 namespace: str | None = None, cpu: str | None = None, memory: str | None = None,
                 env: dict[str, str] | None = None) -> list[dict]:
    """The Kubernetes objects that run ``command`` as ``pods`` connected processes, one per pod:
    ServiceAccount, Role, RoleBinding, headless Service, Indexed Job (see the module docstring).

    Args:
      image: the container image (vasa and the ``kubernetes`` package installed).
      pods: processes (``completions = parallelism``).
      gpus_per_pod: ``nvidia.com/gpu`` requested (and limited) per pod; each process uses all of its pod's.
      name: the Job's name (a DNS label); the Service is ``<name>-svc``, the account ``<name>-sa``.
      namespace: set on every object (default: none, i.e. ``kubectl``'s current namespace).
      cpu, memory: optional requests per pod (``"16"``, ``"64Gi"``).
      env: extra environment variables of the container.
    """
    command = _check_command(command, "k8s")
    _positive("--pods", pods)
    _positive("--gpus-per-pod", gpus_per_pod, allow_zero=True)
    if not image:
        raise LauncherError("--image is required: the container image holding vasa (and the kubernetes package).")
    if not _DNS_LABEL.match(name) or len(name) > 50:
        raise LauncherError(f"--name={name!r} is not allowed: lower-case letters, digits and '-', starting and ending "
                            "with a letter or digit, at most 50 characters (the pods are named <name>-<index>-<suffix>).")
    service, account = f"{name}-svc", f"{name}-sa"

    def meta(obj_name: str) -> dict:
        m = {"name": obj_name, "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "vasa"}}
        if namespace:
            m["namespace"] = namespace
        return m

    requests = {}
    if gpus_per_pod:
        requests["nvidia.com/gpu"] = str(gpus_per_pod)
    if cpu:
        requests["cpu"] = str(cpu)
    if memory:
        requests["memory"] = str(memory)
    container = {"name": "vasa", "image": image, "command": command,
                 "env": [{"name": k, "value": str(v)} for k, v in sorted((env or {}).items())],
                 "ports": [{"name": "coordinator", "containerPort": K8S_COORDINATOR_PORT}]}
    if requests:
        gpu = {k: v for k, v in requests.items() if k == "nvidia.com/gpu"}
        container["resources"] = {"requests": requests, **({"limits": gpu} if gpu else {})}
    if not container["env"]:
        del container["env"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(account)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(f"{name}-pod-reader"),
         "rules": [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(f"{name}-pod-reader"),
         "subjects": [{"kind": "ServiceAccount", "name": account, **({"namespace": namespace} if namespace else {})}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-pod-reader"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(service),
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"job-name": name},
                  "ports": [{"name": "coordinator", "port": K8S_COORDINATOR_PORT,
                             "targetPort": K8S_COORDINATOR_PORT}]}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(name),
         "spec": {"completionMode": "Indexed", "completions": pods, "parallelism": pods, "backoffLimit": 0,
                  "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}},
                               "spec": {"subdomain": service, "serviceAccountName": account,
                                        "restartPolicy": "Never", "containers": [container]}}}},
    ]


def to_yaml(documents: list[dict]) -> str:
    """Multi-document YAML (PyYAML when installed; otherwise JSON documents, which are YAML too)."""
    try:
        import yaml
    except ImportError:
        return "".join("---\n" + json.dumps(d, indent=2) + "\n" for d in documents)
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


def load_yaml(text: str) -> list[dict]:
    """The documents of :func:`to_yaml`'s output."""
    try:
        import yaml
    except ImportError:
        return [json.loads(part) for part in text.split("---\n") if part.strip()]
    return [d for d in yaml.safe_load_all(text) if d is not None]
