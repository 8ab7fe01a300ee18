"""vasa's ray-cast renderer against physics and MJX's own ray casting: throughput at batch size.

For each scene (DM Control cartpole and walker from MuJoCo Playground) and each batch size,
one batch of distinct physics states is made (``reset`` with different keys, then a few
random-action ``env.step`` calls under ``vmap``; camera and geom poses refreshed from
``qpos`` with :func:`vasa.envs.render.refresh_kinematics`) and every contestant works on
that same batch, on the same device:

* ``vasa RGB``: ``jit(vmap(Renderer.render))``, model camera 0, the model's default
  appearance, ``uint8 [H, W, 3]``, with the pixel environments' default quality
  (``PixelObservation``: ``shading="mujoco"``, no shadows, no reflections, one ray per
  pixel). Frames/s and rays/s (one primary ray per pixel, so rays/s = frames/s * H * W).
* ``quality variants`` (``--variants``): the same RGB render at each quality setting, in
  the same run, so the cost of each shading term reads as a ratio to ``fast`` (the camera's
  original one-light Lambert model): ``mujoco`` (MuJoCo's lighting: headlight, model
  lights, specular, emission, skybox), ``+shadows`` (a shadow ray per shadow-casting
  light), ``+reflections`` (one mirror bounce on the reflective floor), ``+ss2`` (2x2
  supersampling; rays/s still counts one ray per pixel).
* ``vasa cast``: ``jit(vmap(camera_rays + Renderer.cast))`` returning distance and geom id
  only (XLA drops the normals and hit points nobody reads): the fair counterpart of
* ``mjx.ray``: ``mujoco.mjx.ray`` (one ray per call) vmapped over the same H*W camera rays
  and over the environments, with the same geom groups (0, 1, 2). It returns distance and
  geom id and no colour. Ratios are ours / peer (> 1: vasa is faster). It ignores
  cylinders; a scene it cannot cast reads ``n/a (reason)``.
* ``mjx.render``: MJX's batch renderer (MuJoCo Warp), only when ``import warp`` works:
  ``refit_bvh`` + ``render`` of camera 0 at the same size, RGB only, no shadows, on Warp
  data made from the same ``qpos``. Its output is the packed ``uint32`` buffer (unpacking
  to ``[H, W, 3]`` is not timed).
* ``physics``: ``jit(vmap(env.step))`` with random actions: one *control* step of the
  Playground task, i.e. ``n_substeps`` MJX physics steps (cartpole 1, walker 10): what an
  agent pays per frame it observes (without action repeat). ``render/physics`` is the time
  of one batched RGB render over the time of one batched ``env.step``.

Timing: every function is jitted and gets the batch as an argument (no constant folding);
the first call is timed and not counted, then ``--repeats`` calls, each ended by
``block_until_ready``, give the median. ``compile`` is the first call's excess over the
median: tracing, compiling and any other first-call cost (for ``mjx.render`` that includes
Warp's kernel compilation, which Warp caches on disk across runs). The pose refresh
(``refresh_kinematics``, one forward-kinematics pass that vasa's ``PixelObservation`` also
pays) is done once beforehand and not timed, as is ``mjx.render``'s ``forward``.

Usage::

    python benchmarks/render_throughput.py                       # GPU-sized batches (CPU: smaller)
    python benchmarks/render_throughput.py --num-envs 1 16 64 --repeats 3 --json out.json
    python benchmarks/render_throughput.py --quick               # smoke run: 1 and 4 envs, 32x32
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import tyro
from mujoco import mjx

from vasa.envs import make_raw
from vasa.envs.render import Renderer, refresh_kinematics

SceneId = Literal["dmc/cartpole_swingup", "dmc/walker_walk"]
VARIANTS = ("fast", "mujoco", "mujoco+shadows", "mujoco+reflections", "mujoco+ss2", "mujoco+shadows+reflections+ss2")
DEFAULT_QUALITY = dict(shading="mujoco")  # PixelObservation's default
GPU_NUM_ENVS = (1, 64, 1024, 4096)
CPU_NUM_ENVS = (1, 16, 64, 256)
GEOM_GROUPS = (0, 1, 2)  # MuJoCo's default visible groups, the renderer's default
CAMERA = 0


@dataclass(frozen=True)
class Args:
    """Render-throughput benchmark settings."""

    scenes: tuple[SceneId, ...] = ("dmc/cartpole_swingup", "dmc/walker_walk")
    """scenes to benchmark, one after the other"""
    num_envs: tuple[int, ...] | None = None
    """batch sizes (default: 1 64 1024 4096, or 1 16 64 256 when JAX runs on the CPU)"""
    width: int = 84
    """image width in pixels"""
    height: int = 84
    """image height in pixels"""
    repeats: int = 5
    """timed calls per measurement (the median is reported)"""
    warmup_steps: int = 10
    """random-action env steps after reset, to make the batch's states distinct"""
    peer_max_envs: int | None = None
    """largest batch mjx.ray is run at (None: all); larger batches read 'skipped'"""
    variants: tuple[str, ...] = VARIANTS
    """quality settings timed side by side: 'fast' or 'mujoco', plus any of '+shadows', '+reflections', '+ss2'
    (none: skip)"""
    mjx_render: bool = True
    """also time MJX's Warp batch renderer when warp-lang is installed"""
    quick: bool = False
    """smoke run: 1 and 4 envs (unless --num-envs is given), 1 repeat, 32x32, 3 warm-up steps"""
    seed: int = 0
    """random seed of the states and actions"""
    json: Path | None = None
    """write the results as JSON here"""


# --------------------------------------------------------------------------- timing


def measure(fn: Callable, *args, repeats: int) -> dict:
    """Time ``fn(*args)``: the first call (compile), then ``repeats`` calls (median)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    cpu_start = time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    # host CPU time of all the process's threads per wall second: cores kept busy (on a CPU backend)
    cores = (time.process_time() - cpu_start) / sum(times)
    median = statistics.median(times)
    return dict(median_s=median, times_s=times, first_call_s=first, compile_s=max(first - median, 0.0),
                cores_busy=cores), out


def throughput(result: dict, num_envs: int, pixels: int) -> dict:
    fps = num_envs / result["median_s"]
    return {**result, "frames_per_s": fps, "rays_per_s": fps * pixels}


def failure(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg[:120]}" + ("..." if len(msg) > 120 else "")


# --------------------------------------------------------------------------- one scene


def quality(variant: str) -> dict:
    """Renderer keyword arguments of a quality variant such as ``"mujoco+shadows+ss2"``."""
    shading, *terms = variant.split("+")
    allowed = {"shadows": ("shadows", True), "reflections": ("reflections", True), "ss2": ("supersample", 2)}
    bad = [t for t in terms if t not in allowed]
    if shading not in ("fast", "mujoco") or bad:
        raise ValueError(f"variants entry {variant!r} is not allowed: 'fast' or 'mujoco' followed by any of "
                         f"{['+' + k for k in allowed]}.")
    return dict(shading=shading, **dict(allowed[t] for t in terms))


def warp_available() -> str | None:
    """None when ``import warp`` works, else why not."""
    try:
        import warp
    except ImportError:
        return "warp-lang not installed"
    except Exception as e:  # noqa: BLE001 - a broken install
        return failure(e)
    warp.config.quiet = True  # no line per compiled kernel module
    warp.config.log_level = getattr(warp, "LOG_WARNING", 30)
    return None


def batch_states(env, step: Callable, num_envs: int, args: Args) -> tuple[Any, Any, float]:
    """``num_envs`` distinct env states, reset with different keys then stepped with random
    actions by ``step``; their physics with poses refreshed from ``qpos`` (what a camera
    sees); and the time of ``step``'s first (compiling) call."""
    key = jax.random.PRNGKey(args.seed)
    key, reset_key = jax.random.split(key)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(reset_key, num_envs))
    shape = (num_envs, *env.action_spec.shape)
    first = 0.0
    for i in range(max(args.warmup_steps, 1)):
        actions = jax.block_until_ready(
            jax.random.uniform(jax.random.fold_in(key, i), shape, minval=-1.0, maxval=1.0))
        start = time.perf_counter()
        state = jax.block_until_ready(step(state, actions))
        first = first or time.perf_counter() - start
    data = jax.jit(jax.vmap(refresh_kinematics, in_axes=(None, 0)))(env.mjx_model, state.physics)
    return (*jax.block_until_ready((state, data)), first)


def run_batch(env, renderer: Renderer, step: Callable, state, data, args: Args, warp_ok: str | None, warp_model,
              step_first_call_s: float | None = None) -> dict:
    """All measurements for one scene on one batch (``state``/``data`` with a leading batch
    axis). ``step`` is the scene's ``jit(vmap(env.step))``; ``step_first_call_s`` the time of
    its first call at this batch size when that call was made already (making the states)."""
    num_envs = int(data.qpos.shape[0])
    pixels = args.width * args.height
    mx = env.mjx_model
    out: dict = dict(num_envs=num_envs)

    # physics: one control step (n_substeps physics steps) per env
    actions = jax.random.uniform(jax.random.PRNGKey(args.seed + 1), (num_envs, *env.action_spec.shape),
                                 minval=-1.0, maxval=1.0)
    phys, _ = measure(step, state, actions, repeats=args.repeats)
    if step_first_call_s is not None:  # the compiling call made the states
        phys.update(first_call_s=step_first_call_s, compile_s=max(step_first_call_s - phys["median_s"], 0.0))
    out["physics"] = {**phys, "steps_per_s": num_envs / phys["median_s"]}

    # vasa: full RGB render
    render = jax.jit(jax.vmap(lambda d: renderer.render(d, CAMERA, outputs=("rgb",))["rgb"]))
    res, rgb = measure(render, data, repeats=args.repeats)
    assert rgb.shape == (num_envs, args.height, args.width, 3) and rgb.dtype == jnp.uint8, (rgb.shape, rgb.dtype)
    out["vasa_rgb"] = throughput(res, num_envs, pixels)

    # the same render at each quality setting
    out["variants"] = {}
    for variant in args.variants:
        r = Renderer(env.mj_model, args.width, args.height, geom_groups=GEOM_GROUPS, **quality(variant))
        fn = jax.jit(jax.vmap(lambda d, r=r: r.render(d, CAMERA, outputs=("rgb",))["rgb"]))
        res, _ = measure(fn, data, repeats=args.repeats)
        out["variants"][variant] = throughput(res, num_envs, pixels)

    # vasa: cast only (distance + geom id), the counterpart of mjx.ray
    def cast_one(d):
        origins, dirs, _ = renderer.camera_rays(renderer.model_camera(d, CAMERA))
        hits = renderer.cast(d, origins, dirs)
        return hits.distance, hits.geom_id

    res, (_, ours_id) = measure(jax.jit(jax.vmap(cast_one)), data, repeats=args.repeats)
    out["vasa_cast"] = throughput(res, num_envs, pixels)

    # peer: mujoco.mjx.ray, one ray per call, vmapped over pixels and envs
    groups = tuple(int(g in GEOM_GROUPS) for g in range(6))
    if args.peer_max_envs is not None and num_envs > args.peer_max_envs:
        out["mjx_ray"] = dict(error=f"skipped: {num_envs} envs > --peer-max-envs {args.peer_max_envs}")
    else:
        def peer_one(d):
            origins, dirs, _ = renderer.camera_rays(renderer.model_camera(d, CAMERA))
            one_ray = lambda p, v: mjx.ray(mx, d, p, v, geomgroup=groups, flg_static=True, bodyexclude=-1)  # noqa: E731
            return jax.vmap(one_ray)(origins, dirs)

        try:
            res, (_, peer_id) = measure(jax.jit(jax.vmap(peer_one)), data, repeats=args.repeats)
            out["mjx_ray"] = throughput(res, num_envs, pixels)
            # sanity: both see the same geoms (they may differ on grazing pixels)
            out["mjx_ray"]["geom_id_agreement"] = float(jnp.mean(peer_id == ours_id))
        except Exception as e:  # noqa: BLE001 - any failure of the peer is reported, not fatal
            out["mjx_ray"] = dict(error=failure(e))

    # MJX's Warp batch renderer
    if not args.mjx_render:
        out["mjx_render"] = dict(error="not requested (--no-mjx-render)")
    elif warp_ok is not None:
        out["mjx_render"] = dict(error=warp_ok)
    else:
        try:
            out["mjx_render"] = mjx_render_batch(env, warp_model, state, num_envs, args)
        except Exception as e:  # noqa: BLE001
            out["mjx_render"] = dict(error=failure(e))

    render_s, step_s = out["vasa_rgb"]["median_s"], out["physics"]["median_s"]
    peer = out["mjx_ray"]
    out["ratio"] = dict(
        render_over_physics=render_s / step_s,
        rgb_over_mjx_ray=out["vasa_rgb"]["rays_per_s"] / peer["rays_per_s"] if "rays_per_s" in peer else None,
        cast_over_mjx_ray=out["vasa_cast"]["rays_per_s"] / peer["rays_per_s"] if "rays_per_s" in peer else None,
    )
    return out


def mjx_render_batch(env, warp_model, state, num_envs: int, args: Args) -> dict:
    """``refit_bvh`` + ``mjx.render`` on Warp data holding the batch's ``qpos``."""
    m = env.mj_model
    dw = jax.vmap(lambda _: mjx.make_data(m, impl="warp"))(jnp.arange(num_envs))
    dw = dw.replace(qpos=state.physics.qpos, qvel=state.physics.qvel)
    dw = jax.block_until_ready(jax.jit(jax.vmap(mjx.forward, in_axes=(None, 0)))(warp_model, dw))
    rc = mjx.create_render_context(
        mjm=m, nworld=num_envs, cam_res=(args.width, args.height), render_rgb=True, render_depth=False,
        use_textures=True, use_shadows=False, cam_active=[CAMERA], enabled_geom_groups=list(GEOM_GROUPS))

    def render(model, d, ctx):
        d = mjx.refit_bvh(model, d, ctx)
        rgb, _, _ = mjx.render(model, d, ctx)
        return rgb

    res, _ = measure(jax.jit(render), warp_model, dw, rc.pytree(), repeats=args.repeats)
    return throughput(res, num_envs, args.width * args.height)


def run_scene(scene: str, num_envs: tuple[int, ...], args: Args, warp_ok: str | None) -> dict:
    env = make_raw(scene)
    renderer = Renderer(env.mj_model, args.width, args.height, geom_groups=GEOM_GROUPS, **DEFAULT_QUALITY)
    inner = env.env
    nan = float("nan")
    info = dict(scene=scene, ngeom=int(env.mj_model.ngeom), n_substeps=int(getattr(inner, "n_substeps", 1)),
                ctrl_dt=float(getattr(inner, "dt", nan)), sim_dt=float(getattr(inner, "sim_dt", nan)))
    warp_model = None
    if args.mjx_render and warp_ok is None:
        try:
            warp_model = mjx.put_model(env.mj_model, impl="warp")
            # its forward() only places the geoms; silence the solver's iteration-limit prints
            if hasattr(getattr(warp_model.opt, "_impl", None), "warn_overflow"):
                warp_model = warp_model.tree_replace({"opt._impl.warn_overflow": 0})
        except Exception as e:  # noqa: BLE001
            warp_ok = failure(e)
    # one batch of the largest size; smaller batches are its first environments
    print(f"[{scene}] making {max(num_envs)} states ...", flush=True)
    step = jax.jit(jax.vmap(env.step))  # one jitted step per scene, so each batch size compiles once
    state, data, step_first = batch_states(env, step, max(num_envs), args)
    rows = []
    for n in num_envs:
        print(f"[{scene}] {n} envs ...", flush=True)
        first = lambda tree: jax.tree.map(lambda x: x[:n], tree)  # noqa: E731
        rows.append(run_batch(env, renderer, step, first(state), first(data), args, warp_ok, warp_model,
                              step_first if n == max(num_envs) else None))
        r = rows[-1]
        print(f"[{scene}] {n} envs: vasa RGB {r['vasa_rgb']['frames_per_s']:,.0f} frames/s, physics "
              f"{r['physics']['steps_per_s']:,.0f} steps/s", flush=True)
    return dict(info=info, rows=rows)


# --------------------------------------------------------------------------- report


def _si(x: float | None) -> str:
    if x is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def print_report(results: list[dict], args: Args, device: str) -> None:
    cols = [("scene", 10), ("envs", 6), ("vasa fps", 10), ("vasa rays/s", 12), ("cast rays/s", 12),
            ("mjx.ray rays/s", 15), ("cast/ray", 9), ("rgb/ray", 8), ("mjx.render fps", 15),
            ("phys steps/s", 13), ("render/phys", 12), ("compile s", 10)]
    header = "".join(f"{name:>{w}}" if i else f"{name:<{w}}" for i, (name, w) in enumerate(cols))
    line = "-" * len(header)
    notes: dict[str, list[str]] = {}
    print(f"\nRender throughput, {args.width}x{args.height} RGB, camera {CAMERA}, median of {args.repeats}; {device}")
    print(line)
    print(header)
    print(line)
    for res in results:
        info = res["info"]
        short = info["scene"].split("/")[-1].split("_")[0]
        for r in res["rows"]:
            peer, wr = r["mjx_ray"], r["mjx_render"]
            for name, entry in (("mjx.ray", peer), ("mjx.render", wr)):
                if "error" in entry:
                    notes.setdefault(f"{name}: n/a ({entry['error']})", []).append(f"{short}@{r['num_envs']}")
            cells = [short, str(r["num_envs"]), _si(r["vasa_rgb"]["frames_per_s"]), _si(r["vasa_rgb"]["rays_per_s"]),
                     _si(r["vasa_cast"]["rays_per_s"]), _si(peer.get("rays_per_s")),
                     _ratio(r["ratio"]["cast_over_mjx_ray"]), _ratio(r["ratio"]["rgb_over_mjx_ray"]),
                     _si(wr.get("frames_per_s")), _si(r["physics"]["steps_per_s"]),
                     _ratio(r["ratio"]["render_over_physics"]), f"{r['vasa_rgb']['compile_s']:.1f}"]
            print("".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, (_, w)) in enumerate(zip(cells, cols))))
    print(line)
    print("vasa fps / vasa rays/s: vasa RGB render (rays = frames x pixels); cast rays/s: vasa cast only "
          "(distance + geom id);\nmjx.ray rays/s: mujoco.mjx.ray on the same camera rays (distance + geom id, "
          "no colour); cast/ray, rgb/ray: vasa / mjx.ray\n(> 1: vasa faster); phys steps/s: jit(vmap(env.step)), "
          "one control step per env; render/phys: time of one batched\nRGB render / one batched env.step; "
          "compile s: vasa RGB render's first-call excess.")
    for res in results:
        i = res["info"]
        print(f"{i['scene']}: {i['ngeom']} geoms; env.step = {i['n_substeps']} physics substep(s) "
              f"(ctrl_dt {i['ctrl_dt']:g} s, sim_dt {i['sim_dt']:g} s)")
    num_rows = sum(len(res["rows"]) for res in results)
    for note, where in notes.items():  # an n/a of every row (e.g. no warp) is said once, without the rows
        print(note if len(where) == num_rows else f"{note}  [{', '.join(where)}]")
    agree = [f"{res['info']['scene'].split('/')[-1]}@{r['num_envs']}: {r['mjx_ray']['geom_id_agreement']:.4f}"
             for res in results for r in res["rows"] if "geom_id_agreement" in r["mjx_ray"]]
    if agree:
        print("geom-id agreement vasa cast vs mjx.ray (fraction of pixels): " + ", ".join(agree))
    if any(r.get("variants") for res in results for r in res["rows"]):
        print(f"\nQuality variants, {args.width}x{args.height} RGB (rays/s count one ray per pixel; ratio: frames/s "
              "over fast's, same batch)")
        print(f"{'scene':<10}{'envs':>6}  {'variant':<34}{'fps':>9}{'rays/s':>10}{'ratio':>7}")
        for res in results:
            short = res["info"]["scene"].split("/")[-1].split("_")[0]
            for r in res["rows"]:
                v = r["variants"]
                base = v.get("fast", {}).get("frames_per_s")
                for name, x in v.items():
                    ratio = f"{x['frames_per_s'] / base:.2f}" if base else "n/a"
                    print(f"{short:<10}{r['num_envs']:>6}  {name:<34}{_si(x['frames_per_s']):>9}"
                          f"{_si(x['rays_per_s']):>10}{ratio:>7}")
    comp = [f"{res['info']['scene'].split('/')[-1]}@{r['num_envs']}: cast {r['vasa_cast']['compile_s']:.1f}, "
            f"mjx.ray {r['mjx_ray']['compile_s']:.1f}" if "compile_s" in r["mjx_ray"] else
            f"{res['info']['scene'].split('/')[-1]}@{r['num_envs']}: cast {r['vasa_cast']['compile_s']:.1f}"
            for res in results for r in res["rows"]]
    print("other compile s: " + "; ".join(comp))
    if results and results[0]["rows"] and jax.default_backend() == "cpu":
        busy = {}
        for name, key in (("vasa RGB", "vasa_rgb"), ("vasa cast", "vasa_cast"), ("mjx.ray", "mjx_ray"),
                          ("mjx.render", "mjx_render"), ("physics", "physics")):
            vals = [r[key]["cores_busy"] for res in results for r in res["rows"] if "cores_busy" in r[key]]
            if vals:
                busy[name] = statistics.mean(vals)
        print("cores busy while timed (process CPU time / wall time, mean over rows): "
              + ", ".join(f"{k} {v:.2f}" for k, v in busy.items()))


try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.<name>
    from _common import vasa_revision
except ImportError:
    from benchmarks._common import vasa_revision


def main(args: Args) -> None:
    if args.quick:
        args = dataclasses.replace(args, num_envs=args.num_envs or (1, 4), repeats=1, width=32, height=32,
                                   warmup_steps=min(args.warmup_steps, 3))
    backend = jax.default_backend()
    num_envs = args.num_envs or (CPU_NUM_ENVS if backend == "cpu" else GPU_NUM_ENVS)
    checks = [("num_envs", all(n >= 1 for n in num_envs), "positive integers"),
              ("repeats", args.repeats >= 1, "an integer >= 1"),
              ("width", args.width >= 1, "an integer >= 1"), ("height", args.height >= 1, "an integer >= 1")]
    for field, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{field}={getattr(args, field)!r} is not allowed: it must be {allowed}.")
    for variant in args.variants:
        quality(variant)
    args = dataclasses.replace(args, num_envs=tuple(num_envs))
    dev = jax.devices()[0]
    device = (f"{jax.device_count()} x {dev.platform}:{dev.device_kind}, {os.cpu_count()} CPU cores, "
              f"jax {jax.__version__}")
    revision = vasa_revision()
    warp_ok = warp_available() if args.mjx_render else "not requested"
    start = time.perf_counter()
    results = [run_scene(scene, args.num_envs, args, warp_ok) for scene in args.scenes]
    print_report(results, args, f"{device}; vasa {revision}")
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")
    if args.json:
        record = dict(date=datetime.date.today().isoformat(), device=device, vasa_revision=revision,
                      args={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(args).items()},
                      results=results)
        args.json.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main(tyro.cli(Args))
