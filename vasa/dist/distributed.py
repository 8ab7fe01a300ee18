"""Many processes as one JAX program: ``jax.distributed`` initialisation and the few
cross-process helpers the run machinery needs (who writes files, a barrier).

After :func:`initialize`, ``jax.devices()`` lists every process's devices, so
:func:`vasa.dist.make_mesh` spans all of them and the trainers' ``shard_map`` collectives
cross processes (on CPU through gloo over TCP; on GPU through NCCL). Each process runs the
same program; arrays replicated over the mesh (parameters, metrics) are readable in every
process, and only process 0 writes the run directory's files.

Where the coordinator address and the process's rank come from, in order:

1. the arguments;
2. ``VASA_COORDINATOR``, ``VASA_NUM_PROCESSES``, ``VASA_PROCESS_ID`` (set by
   ``vasa launch local``);
3. JAX's own cluster detection (SLURM, Open MPI, Kubernetes Indexed Jobs / JobSets, ...,
   see ``jax._src.clusters``), which also reads ``JAX_COORDINATOR_ADDRESS``: with no
   arguments and no ``VASA_*`` variables :func:`initialize` calls
   ``jax.distributed.initialize()`` with none either. :func:`cluster_environment` tells
   whether any of these started the process, and :func:`initialize_if_launched` (what the
   example scripts call) initialises only then. ``vasa launch slurm|mpi|k8s``
   (:mod:`vasa.dist.launchers`) writes the job files that start the processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

ENV_COORDINATOR = "VASA_COORDINATOR"
ENV_NUM_PROCESSES = "VASA_NUM_PROCESSES"
ENV_PROCESS_ID = "VASA_PROCESS_ID"


def launched() -> bool:
    """Whether this process was started by ``vasa launch`` (``VASA_COORDINATOR`` is set)."""
    return bool(os.environ.get(ENV_COORDINATOR))


def cluster_environment() -> str | None:
    """Which multi-process environment started this process, read from its environment
    variables alone (no network, no import of JAX's backends):

    * ``"vasa"``: ``vasa launch local`` (``VASA_COORDINATOR``);
    * ``"slurm"``: a SLURM job step with more than one task (``srun``: ``SLURM_JOB_ID``,
      ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS`` > 1, ``SLURM_PROCID``, ``SLURM_LOCALID``, the
      variables JAX's ``SlurmCluster`` reads);
    * ``"ompi"``: Open MPI's ``mpirun`` with more than one rank (``OMPI_MCA_orte_hnp_uri``,
      ``OMPI_COMM_WORLD_SIZE`` > 1: JAX's ``OmpiCluster``);
    * ``"k8s"``: a pod of a Kubernetes Indexed Job (``KUBERNETES_SERVICE_HOST`` and
      ``JOB_COMPLETION_INDEX``: JAX's ``K8sCluster``, which also needs the ``kubernetes`` package);
    * ``None``: a plain single process.

    A one-task SLURM step or a one-rank ``mpirun`` is a plain process (``None``).
    """
    env = os.environ
    if env.get(ENV_COORDINATOR):
        return "vasa"
    if all(k in env for k in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
                              "SLURM_LOCALID")) and _int_or(env["SLURM_NTASKS"], 1) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and _int_or(env.get("OMPI_COMM_WORLD_SIZE", "1"), 1) > 1:
        return "ompi"
    if "KUBERNETES_SERVICE_HOST" in env and "JOB_COMPLETION_INDEX" in env:
        return "k8s"
    return None


def initialize_if_launched(**kwargs) -> str | None:
    """:func:`initialize` when :func:`cluster_environment` finds one (``vasa launch``, SLURM,
    Open MPI, a Kubernetes Indexed Job), else nothing; the trainers' scripts call it first.
    Returns the summary line, or ``None`` for a plain single process."""
    if cluster_environment() is None:
        return None
    return initialize(**kwargs)


def _int_or(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: int | Sequence[int] | None = None,
               timeout_s: int = 300, heartbeat_timeout_s: int = 30, shutdown_timeout_s: int = 30,
               cpu_collectives: str | None = "gloo", verbose: bool = True) -> str:
    """Connect this process to the others (``jax.distributed.initialize``); call it first,
    before anything touches a JAX device.

    Args:
      coordinator_address: ``host:port`` of process 0's coordination service.
      num_processes: how many processes take part.
      process_id: this process's rank, ``0 <= process_id < num_processes``.
      local_device_ids: the local accelerators this process uses (default: all, or what the
        cluster detection assigns).
      timeout_s: how long to wait for every process to connect.
      heartbeat_timeout_s: a process that sends no heartbeat for this long is declared
        dead, and every other process then stops with an error naming it (instead of
        waiting in a collective forever). A collective whose peer has died usually fails
        sooner, when its connection is reset.
      shutdown_timeout_s: how long a finishing process waits for the others at exit.
      cpu_collectives: the CPU backend's cross-process collectives (``"gloo"``, JAX's
        default, or ``"mpi"``); ``None`` leaves JAX's setting alone.
      verbose: print the summary line.

    Returns:
      A one-line summary: ``process i of n, L local device(s), G global (platform)``.
      Calling it again in an initialised process returns the summary without reconnecting.

    Raises:
      RuntimeError: a JAX backend was initialised before this call (anything that lists
        devices, creates an array or runs a computation does that).
      ValueError: no coordinator/rank was given, set by ``vasa launch`` or detected.
    """
    import jax
    from jax._src import xla_bridge

    if jax.distributed.is_initialized():
        return summary()
    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "vasa.dist.initialize() must run before anything initialises a JAX backend, but one is already "
            "initialised (by jax.devices(), an array, a jit call, vasa.dist.make_mesh(), an algorithm's init, ...). "
            "Call it first thing in the program, right after the imports.")
    env = os.environ
    if coordinator_address is None and env.get(ENV_COORDINATOR):
        coordinator_address = env[ENV_COORDINATOR]
    if num_processes is None and env.get(ENV_NUM_PROCESSES):
        num_processes = _env_int(ENV_NUM_PROCESSES)
    if process_id is None and env.get(ENV_PROCESS_ID):
        process_id = _env_int(ENV_PROCESS_ID)
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id,
            local_device_ids=local_device_ids, initialization_timeout=int(timeout_s),
            heartbeat_timeout_seconds=int(heartbeat_timeout_s), shutdown_timeout_seconds=int(shutdown_timeout_s))
    except ValueError as e:
        if "must be defined" in str(e) or "should be defined" in str(e):
            raise ValueError(
                f"vasa.dist.initialize(): {e} Pass coordinator_address, num_processes and process_id, start the "
                f"program with `vasa launch local --processes N -- ...` (which sets {ENV_COORDINATOR}, "
                f"{ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}), or run it inside a cluster JAX detects (SLURM, Open MPI, "
                "Kubernetes).") from e
        raise
    line = summary()
    if verbose:
        print(line, flush=True)
    return line


def summary() -> str:
    """``process i of n, L local device(s), G global (platform)`` for this process."""
    import jax

    local, devices = jax.local_devices(), jax.devices()
    return (f"vasa.dist: process {jax.process_index()} of {jax.process_count()}, {len(local)} local device(s), "
            f"{len(devices)} global ({devices[0].platform})")


def is_primary() -> bool:
    """Whether this is process 0, the one that writes a run's files."""
    import jax

    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (no-op with one process).
    Every process must pass the same names in the same order."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not allowed: it must be an integer.") from None
