"""vasa ES against evosax's OpenAI-ES and Brax's ES, side by side in one process.

The three run OpenAI-ES on the same Brax task (MJX backend), with the same population, episode
length, policy network (MLP, tanh output), noise std, Adam learning rate and centred-rank
fitness shaping; observation normalisation, action noise and L2 are off, since the peers lack
some of them. Per side: environment steps per second of the training iterations (compilation
excluded; every member runs the whole episode, as all three implementations do) and the
deterministic return of the final centre over 16 episodes, after the same number of
iterations (equal environment steps).

* evosax 0.3.x (``pip install evosax``): ``Open_ES`` supplies ask/tell; the rollout is what a
  user would write around it: ``vmap`` over the population of a ``lax.scan`` episode of the
  same vasa environment as vasa's members use (cached auto-reset, steps after the end masked),
  jitted together with ask and tell. evosax minimises, so it gets ``-fitness``.
* Brax ``brax.training.agents.es.train``: its own loop and environment wrappers;
  ``population_size`` there counts antithetic *pairs*. Each epoch's time comes from Brax's own
  ``training/sps`` (an evaluation after every epoch makes it report them all; evaluation time
  is not in it); the loop is stopped after ``iterations`` epochs. Its first two epochs compile
  (the training state's types change after the first) and are not timed, as evosax's first two
  generations are not; vasa compiles ahead of time and skips one warm-up iteration. Steps/s on
  every side: all members' steps of the timed iterations over their summed time.

Then SURREAL's figure 3.6 in vasa's terms (``--scaling``): wall-clock time for vasa ES to reach
a return threshold as the population grows, written as ``es_scaling.png``.

    python benchmarks/es_vs_peers.py                                  # inverted_pendulum, population 256, 15 iterations
    python benchmarks/es_vs_peers.py --seeds 3 --iterations 12        # three seeds per side, interleaved
    python benchmarks/es_vs_peers.py --scaling --populations 16 64 256 1024 --threshold 900
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import numpy as np  # noqa: E402

from benchmarks._common import vasa_revision  # noqa: E402


def _config(args, population: int, seed: int = 0):
    from vasa.algos import es

    return es.ESConfig(env=f"brax/{args.task}", population=population, noise_std=args.sigma,
                       learning_rate=args.lr, l2_coef=0.0, action_noise=0.0, normalize_observations=False,
                       hidden_layers=tuple(args.hidden), episode_length=args.episode_length, action_repeat=1,
                       fitness_shaping="centered_rank", total_env_steps=population * args.episode_length * 10_000, seed=seed)


def run_vasa(args, population: int, iterations: int, seed: int = 0):
    import jax

    from vasa.algos import es

    config = _config(args, population, seed)
    env = es.make_env(config)
    state = es.init(config, env)
    step = es.make_train_step(config, es.make_env(config, training=True)).lower(state).compile()
    state, warm = step(state)  # warm-up iteration (not timed)
    jax.block_until_ready(state)
    t = time.perf_counter()
    done = 1
    if args.budget == "iterations":
        for _ in range(iterations - 1):
            state, metrics = step(state)
            done += 1
    else:  # Brax's accounting: stop when the alive steps (episode_steps per member) reach the budget
        alive = float(warm["episode_steps"]) * population  # the warm-up iteration counts
        while alive < iterations * population * args.episode_length and done < args.max_iterations:
            state, metrics = step(state)
            alive += float(metrics["episode_steps"]) * population
            done += 1
    jax.block_until_ready(state)
    dt = time.perf_counter() - t
    ret = float(es.make_evaluate(config, 16, env)(state, jax.random.PRNGKey(7)))
    return {"sps": config.env_steps_per_iteration(env) * (done - 1) / dt, "return": ret,
            "seconds_per_iteration": dt / (done - 1), "iterations_run": done}


def run_evosax(args, population: int, iterations: int, seed: int = 0):
    import jax
    import optax
    from evosax.algorithms import Open_ES

    from vasa.algos import es
    from vasa.envs.rollout import episode_returns
    from vasa.nn import RunningStats

    import jax.numpy as jnp

    config = _config(args, population, seed)
    env = es.make_env(config)
    rollout_env = es.make_env(config, training=True)  # the same episodes vasa's members run (cached reset, tail masked)
    policy = es.Policy(config, env)
    stats = RunningStats.create(policy.obs_size)  # unused statistics (normalisation off)
    theta0 = policy.init(jax.random.PRNGKey(config.seed))
    strategy = Open_ES(population_size=population, solution=theta0, use_antithetic_sampling=True,
                       optimizer=optax.adam(args.lr), std_schedule=optax.constant_schedule(args.sigma))
    params = strategy.default_params
    T = args.episode_length

    def fitness_of(thetas, key):
        def one(theta, k):
            def body(carry, _):
                s, total, alive = carry
                s = rollout_env.step(s, policy.act(theta, stats, s.obs))
                return (s, total + jnp.where(alive > 0, s.reward, 0.0), jnp.where(s.done > 0, 0.0, alive)), None

            (_, total, _), _ = jax.lax.scan(body, (rollout_env.reset(k), 0.0, 1.0), None, length=T)
            return total

        return jax.vmap(one)(thetas, jax.random.split(key, thetas.shape[0]))

    @jax.jit
    def generation(es_state, key):
        k_ask, k_eval, k_tell = jax.random.split(key, 3)
        population_, es_state = strategy.ask(k_ask, es_state, params)
        fitness = fitness_of(population_, k_eval)
        es_state, _ = strategy.tell(k_tell, population_, -fitness, es_state, params)  # evosax minimises
        return es_state, fitness.mean()

    es_state = strategy.init(jax.random.PRNGKey(1 + 1000 * seed), theta0, params)
    key = jax.random.PRNGKey(2 + 1000 * seed)
    # compile + warm-up, twice: the state's weak types change after the first call, which retraces once
    es_state, _ = generation(es_state, key)
    es_state, _ = generation(es_state, key)
    jax.block_until_ready(es_state)
    t = time.perf_counter()
    for i in range(iterations - 2):  # the same number of generations as the other sides in all
        es_state, _ = generation(es_state, jax.random.fold_in(key, i + 1))
    jax.block_until_ready(es_state)
    dt = time.perf_counter() - t
    evaluate = jax.jit(lambda theta, k: episode_returns(env, lambda obs: policy.act(theta, stats, obs), k, 16).mean())
    ret = float(evaluate(es_state.mean, jax.random.PRNGKey(7)))
    return {"sps": population * T * (iterations - 2) / dt, "return": ret, "seconds_per_iteration": dt / (iterations - 2)}


class _StopBrax(Exception):
    """Raised from Brax's progress callback to end its loop after the epochs to be timed."""


def run_brax(args, population: int, iterations: int, seed: int = 0):
    import jax
    from brax import envs as brax_envs
    from brax.training.agents.es import networks as es_networks
    from brax.training.agents.es import train as brax_es

    env = brax_envs.get_environment(args.task, backend="mjx")
    T = args.episode_length
    per_epoch = population * T
    seconds, final = [], {}

    def progress(step, metrics):
        final.update(metrics)
        if "training/sps" in metrics:
            seconds.append(per_epoch / float(metrics["training/sps"]))  # Brax's own clock of this epoch
            if args.budget == "iterations" and len(seconds) >= iterations:
                raise _StopBrax

    factory = functools.partial(es_networks.make_es_networks, hidden_layer_sizes=tuple(args.hidden),
                                activation=jax.nn.tanh)
    # Brax's loop runs until its *alive* steps (steps after a member's episode ended are masked
    # and not counted) reach num_timesteps, and reports timings only when it evaluates. An
    # evaluation after every epoch (num_evals = num_timesteps: one counted step between
    # evaluations) gives every epoch's time from Brax's own clock (evaluation excluded); with
    # the iteration budget the callback stops the loop after ``iterations`` epochs, so the
    # return is taken after equal environment steps and the timed epochs are the same ones as
    # evosax's (3..iterations: the first two compile, as evosax's first two generations do).
    budget = per_epoch * (iterations if args.budget == "alive" else 100 * iterations)
    try:
        brax_es.train(environment=env, num_timesteps=budget, episode_length=T, action_repeat=1,
                      population_size=population // 2, learning_rate=args.lr, perturbation_std=args.sigma,
                      fitness_shaping=brax_es.FitnessShaping.CENTERED_RANK, normalize_observations=False,
                      l2coeff=0.0, num_evals=budget, num_eval_envs=16, deterministic_eval=True,
                      network_factory=factory, progress_fn=progress, seed=seed)
    except _StopBrax:
        pass
    timed = seconds[2:] or seconds  # its second epoch compiles again (the state's types change after the first)
    return {"sps": per_epoch * len(timed) / float(np.sum(timed)), "return": float(final.get("eval/episode_reward", np.nan)),
            "seconds_per_iteration": float(np.mean(timed)), "iterations_run": len(seconds)}


def scaling(args):
    """Wall-clock time for vasa ES to reach ``--threshold`` (deterministic evaluation every
    iteration), per population size."""
    import jax

    from vasa.algos import es

    out = {}
    for population in args.populations:
        config = _config(args, population)
        env = es.make_env(config)
        state = es.init(config, env)
        step = es.make_train_step(config, env).lower(state).compile()
        evaluate = es.make_evaluate(config, 16, env)
        evaluate(state, jax.random.PRNGKey(0)).block_until_ready()
        wall, reached = 0.0, None
        for it in range(1, args.max_iterations + 1):
            t = time.perf_counter()
            state, _ = step(state)
            jax.block_until_ready(state)
            wall += time.perf_counter() - t
            ret = float(evaluate(state, jax.random.PRNGKey(it)))
            if ret >= args.threshold:
                reached = (it, wall, ret)
                break
        out[population] = {"iterations": reached[0] if reached else None, "seconds": reached[1] if reached else None,
                           "env_steps": reached[0] * config.env_steps_per_iteration(env) if reached else None,
                           "last_return": ret, "seconds_run": wall}
        print(f"population {population}: {out[population]}", flush=True)
    plot_scaling(out, args.threshold, args.task, os.path.join(args.out, "es_scaling.png"))
    return out


def plot_scaling(out: dict, threshold: float, task: str, path: str) -> None:
    """Seconds and iterations to ``threshold`` against population (``out`` as :func:`scaling`
    returns it, or as ``summary.json`` stores it), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pops = sorted(int(p) for p in out if out[p]["seconds"] is not None)
    row = {int(p): v for p, v in out.items()}
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(pops, [row[p]["seconds"] for p in pops], "o-")
    ax[0].set(xlabel="population", ylabel=f"seconds to return {threshold:g}", title=f"vasa ES, brax/{task}")
    ax[1].plot(pops, [row[p]["iterations"] for p in pops], "o-")
    ax[1].set(xlabel="population", ylabel="iterations to threshold")
    for a in ax:
        a.set_xscale("log", base=2)
        a.set_xticks(pops, [str(p) for p in pops])
        a.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="inverted_pendulum", help="a Brax task (brax.envs), run on MJX by all three")
    p.add_argument("--population", type=int, default=256)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--episode-length", type=int, default=1000)
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    p.add_argument("--sigma", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--seeds", type=int, default=1, help="seeds per side (median steps/s, mean +- std return)")
    p.add_argument("--budget", choices=["iterations", "alive"], default="iterations",
                   help="vasa runs --iterations iterations, or (alive) until its alive steps reach "
                        "iterations x population x episode length, as Brax's loop counts (at most --max-iterations)")
    p.add_argument("--sides", nargs="+", default=["vasa", "evosax", "brax"])
    p.add_argument("--scaling", action="store_true", help="also time-to-threshold against population size")
    p.add_argument("--populations", type=int, nargs="+", default=[16, 64, 256, 1024])
    p.add_argument("--threshold", type=float, default=900.0)
    p.add_argument("--max-iterations", type=int, default=60)
    p.add_argument("--out", default="runs/bench-es")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import jax

    runners = {"vasa": run_vasa, "evosax": run_evosax, "brax": run_brax}
    runs = {side: [] for side in args.sides}
    for seed in range(args.seeds):  # sides interleaved per seed: a busy CPU slows all of them alike
        for side in args.sides:
            r = runners[side](args, args.population, args.iterations, seed)
            runs[side].append(r)
            print(f"{side:>7s} seed {seed}: {r['sps']:12,.0f} env steps/s, return {r['return']:8.1f} after "
                  f"{r.get('iterations_run', args.iterations)} iterations", flush=True)
    results = {side: {"sps": float(np.median([r["sps"] for r in rs])),
                      "return": float(np.mean([r["return"] for r in rs])),
                      "return_std": float(np.std([r["return"] for r in rs])), "per_seed": rs}
               for side, rs in runs.items()}
    for side, r in results.items():
        print(f"{side:>7s}: median {r['sps']:12,.0f} env steps/s, return {r['return']:.1f} +- {r['return_std']:.1f} "
              f"over {args.seeds} seed(s)")
    for peer in [s for s in args.sides if s != "vasa"]:
        if "vasa" in results:
            print(f"vasa / {peer}: steps/s x{results['vasa']['sps'] / results[peer]['sps']:.2f}, return "
                  f"{results['vasa']['return']:.1f} vs {results[peer]['return']:.1f}")
    summary = {"revision": vasa_revision(), "device": jax.devices()[0].device_kind, "args": vars(args),
               "results": results}
    if args.scaling:
        summary["scaling"] = scaling(args)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=float)
    print(f"{args.out}/summary.json")


if __name__ == "__main__":
    main()
