#!/usr/bin/env bash
# Run the GPU benchmarks that CPU sessions cannot, on the device machine, in one call.
#
# The device machine has Python 3.12 with jax, flax, optax, chex and orbax, but not tyro,
# mujoco, mujoco-mjx, brax or playground: they travel as wheels in the ignored folder .whl/
# (made here once, ~47 MB, see below) and install into /tmp/site. vasa and pallas_kernels are
# imported from the working tree (PYTHONPATH), so nothing is pip-installed from the network.
#
# Make the wheels (on the CPU machine, in the repo root):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.0 \
#     mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 mujoco-mjx==3.17.0 brax==0.14.2 \
#     playground==0.2.0 glfw==2.11.0 pyopengl==3.1.10 trimesh==5.2.0 ml-collections==1.1.0 \
#     jaxopt==0.8.5 mediapy==1.2.7 lxml==6.1.3 tensorboardx==2.6.5 evosax==0.3.2 dotmap==1.3.30
#
# Usage (device tool: carry [".whl"], results come back from $OUT):
#   bash benchmarks/gpu_session.sh shift            # Pallas kernel + block latency (~5 min)
#   bash benchmarks/gpu_session.sh render           # renderer throughput (issue 3 targets)
#   bash benchmarks/gpu_session.sh sac              # DrQ pixels to 750 + SAC vs Brax (long: alone)
#   bash benchmarks/gpu_session.sh ppo              # PPO vs Brax incl. dmc/cheetah_run parity (long)
#   bash benchmarks/gpu_session.sh augment          # SECANT Combo1 throughput vs NumPy (~2 min)
#   bash benchmarks/gpu_session.sh secant           # SECANT zero-shot at 84x84, 3 seeds (long: alone)
#   bash benchmarks/gpu_session.sh secantwalk       # the same on walker_stand from a state SAC expert (long: alone)
#   bash benchmarks/gpu_session.sh es               # ES vs evosax and Brax ES, population scaling (~8 min)
#   bash benchmarks/gpu_session.sh pixppo           # PPO from 64x64 pixels (FF, LSTM) vs Brax vision PPO and state PPO (~8 min)
#   bash benchmarks/gpu_session.sh step             # batch_step's lax.cond vs vmap, conv gradients (~3 min): decides
#                                                   # whether batch_step's lazy reset should be the default off the CPU
#   bash benchmarks/gpu_session.sh stackdemo        # robo/stack: BC term + reverse starts, BC term, none, 3M steps each (~9 min)
# Stages run in the order given; each writes <stage>*.json and <stage>.log under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/vasa_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache MUJOCO_GL=egl XLA_PYTHON_CLIENT_PREALLOCATE=false

if [ -d .whl ] && ! python3 -c "import tyro, mujoco, brax, mujoco_playground" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
fi
python3 - <<'EOF' | tee "$OUT/device.txt"
import jax; d = jax.devices()[0]
print(f"jax {jax.__version__}, {jax.device_count()} x {d.platform}:{d.device_kind}")
EOF

run() {  # run <stage> <timeout s> <command...>
  local stage=$1 limit=$2; shift 2
  echo "=== $stage: $*" | tee -a "$OUT/$stage.log"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$stage.log"
  echo "=== $stage exit ${PIPESTATUS[0]}" | tee -a "$OUT/$stage.log"
}

for stage in "$@"; do
  case "$stage" in
    shift)
      run shift 240 python3 benchmarks/shift_kernel.py --sweep --paper-only --no-train-step --json "$OUT/shift_sweep.json"
      run shift 420 python3 benchmarks/shift_kernel.py --json "$OUT/shift_kernel.json"
      run shift 180 python3 benchmarks/shift_block_latency.py --json "$OUT/shift_block_latency.json"
      ;;
    render)
      run render 540 python3 benchmarks/render_throughput.py --json "$OUT/render_throughput.json"
      ;;
    sac)
      run sac 580 python3 benchmarks/sac_pixels.py --part both --json "$OUT/sac_pixels.json"
      ;;
    ppo)
      run ppo 580 python3 benchmarks/ppo_vs_brax.py --out "$OUT/ppo_vs_brax.json"
      ;;
    augment)
      run augment 240 python3 benchmarks/augment_throughput.py --per-op
      ;;
    secant)
      # reacher_easy from a state PPO expert (the benchmark's default task until session 40, now walker_stand)
      run secant 580 python3 benchmarks/secant_zero_shot.py --env dmc/reacher_easy --expert ppo --query-fraction 0.3 --eval-episodes 32 --secant-ops cutout_color conv mixup crop --image-size 84 --num-envs 64 --student-steps 5000 --safe-seeds 1 --out "$OUT/secant"
      ;;
    secantwalk)
      # sessions 25-26: on walker_stand the 32x32 CPU student (RAD's conv) met six of seven targets; color_hard did not;
      # session 28: adding color_map at 48x48 kept 76% of train under color_hard on the CPU (three seeds, 64 episodes)
      run secantwalk 580 python3 benchmarks/secant_zero_shot.py --env dmc/walker_stand --expert sac --expert-env-steps 400000 --image-size 84 --num-envs 64 --student-steps 5000 --safe-seeds 1 --secant-ops cutout_color rad_conv color_map mixup crop --workers 1 --out "$OUT/secantwalk"
      ;;
    es)
      run es 480 python3 benchmarks/es_vs_peers.py --population 1024 --iterations 20 --scaling \
        --populations 64 256 1024 4096 --out "$OUT/es"
      ;;
    pixppo)
      run pixppo 480 python3 benchmarks/ppo_pixels.py --image-size 64 --env-steps 2000000 --num-envs 256 \
        --encoder nature --out "$OUT/pixppo"
      ;;
    nav)
      run nav 420 python3 benchmarks/navigation_throughput.py --envs 256 1024 4096 --horizon 20
      ;;
    robo)
      run robo 420 bash -c "python3 benchmarks/manipulation_throughput.py --num-envs 256 1024 4096 --tasks lift door stack two_arm_lift && python3 benchmarks/manipulation_throughput.py --num-envs 256 1024 --tasks lift door --pixels"
      ;;
    step)
      run step 240 python3 benchmarks/batch_step.py --cases dmc/walker_stand:0:1024 dmc/walker_stand:84:256 brax/ant:0:4096 robo/lift:0:1024
      run step 240 python3 benchmarks/conv_gradient.py
      ;;
    stackdemo)
      # issue 19: demonstrations on robo/stack at GPU scale, three runs of 3M steps each with the same budget:
      # DAPG's behaviour-cloning term (--demo-bc-coef 10) with reverse demonstration starts growing by success
      # (session 34's CPU command), the term alone, and no demonstrations; success of every checkpoint, one PNG.
      STACK="--env robo/stack --num-envs 2048 --unroll-length 32 --action-repeat 1 --episode-length 200 --total-env-steps 3000000 --num-minibatches 32 --num-epochs 4 --learning-rate 3e-4 --policy-layers 256 256 --value-layers 256 256 --checkpoint-every 5 --keep-checkpoints 100 --no-progress"
      BC="--demo-path /tmp/stack_demos.npz --demo-bc-coef 10"
      run stackdemo 570 bash -c "python3 examples/record_demos.py --env robo/stack --out /tmp/stack_demos.npz --num-episodes 256 --episode-length 120 && python3 examples/train_ppo.py $STACK $BC --demo-ratio 0.5 --demo-curriculum reverse --demo-schedule 5 5 8 --demo-grow-at 0.5 --run-dir /tmp/stack-bc-rev && python3 examples/train_ppo.py $STACK $BC --demo-ratio 0 --run-dir /tmp/stack-bc && python3 examples/train_ppo.py $STACK --run-dir /tmp/stack-none && python3 examples/evaluate_success.py /tmp/stack-bc-rev /tmp/stack-bc /tmp/stack-none --labels 'BC term + reverse starts' 'BC term' 'no demonstrations' --num-episodes 128 --csv $OUT/stack_curriculum.csv --plot $OUT/stack_curriculum.png"
      ;;
    *)
      echo "unknown stage '$stage' (one of: shift render sac ppo augment secant secantwalk es pixppo nav robo step stackdemo)"; exit 2
      ;;
  esac
done
