#!/usr/bin/env bash
# The accelerator benchmarks in one go, each part under its own time limit,
# so one failure leaves the rest standing:
#   bash launch/bench_gpu.sh [OUT_DIR]          (default bench_results/gpu)
#   BENCH_ALL=1 bash launch/bench_gpu.sh        (also the longer extras)
# The first part (at most ~9 minutes, usually less) measures candidates per
# hour with compiles (fp32, bf16; one child at a time and K = 8 vmapped),
# the data feed against the step rate, and whole proposals at the default
# and faithful sizes: eval_{mat,vmap}_{fp32,bf16}.json, feed.json,
# propose.json. The extras add eval_ahead_fp32.json, surrogate.json and
# devices.json. log.txt holds everything printed.
set -u
out=${1:-bench_results/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python3}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  $py -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
  echo '== evaluate, fp32: ResNet-18 at CIFAR size, batch 128'
  # Materialised candidates run one after another: K=1 gives their rate.
  timeout 90 $py -m esnac_jax.bench.evaluate --setups=resnet18_cifar \
      --paths=materialised --ks=1 --steps=20 --out="$out/eval_mat_fp32.json"
  timeout 90 $py -m esnac_jax.bench.evaluate --setups=resnet18_cifar \
      --paths=masked_vmap --ks=8 --steps=20 --out="$out/eval_vmap_fp32.json"
  echo '== evaluate, bf16 activations'
  timeout 60 $py -m esnac_jax.bench.evaluate --setups=resnet18_cifar \
      --paths=materialised --ks=1 --steps=20 --dtype=bfloat16 \
      --out="$out/eval_mat_bf16.json"
  timeout 70 $py -m esnac_jax.bench.evaluate --setups=resnet18_cifar \
      --paths=masked_vmap --ks=8 --steps=20 --dtype=bfloat16 \
      --out="$out/eval_vmap_bf16.json"
  echo '== feed: host and device batches against the steps they feed'
  timeout 90 $py -m esnac_jax.bench.feed --steps=20 --out="$out/feed.json"
  echo '== propose: pools of ResNet-34 and whole asks, default and faithful'
  timeout 120 $py -m esnac_jax.bench.propose --arch_children=100 \
      --out="$out/propose.json"
  if [ -n "${BENCH_ALL:-}" ]; then
    echo '== evaluate: four students compiled one by one, then in threads'
    timeout 120 $py -m esnac_jax.bench.evaluate --setups=resnet18_cifar \
        --paths=materialised,materialised_ahead --ks=4 --steps=10 \
        --out="$out/eval_ahead_fp32.json"
    echo '== surrogate: 108-layer sequences, history 160, K=8, M=1000'
    timeout 330 $py -m esnac_jax.bench.surrogate \
        --variants=default,faithful,independent,masked,shared,small,warm,original_way \
        --out="$out/surrogate.json"
    echo '== devices: the search scorer, K=8, on this host'
    timeout 80 $py -m esnac_jax.bench.devices --mode=real --devices=1 \
        --setup=cifar_shaped --k=8 --rounds=3 --out="$out/devices.json"
  fi
  date -u
} 2>&1 | grep -v -E '^[IW][0-9]{4} ' | tee "$out/log.txt"
