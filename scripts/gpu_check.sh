#!/usr/bin/env bash
# The prepared GPU check, for a lent GPU machine (the `device` tool), run from the repository root there
# with .whl/ carried (made here by scripts/gpu_wheels.sh):
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It runs tests/test_gpu.py (fp16, bf16, fp32; inpaint + region + ControlNet + LoRA; regional attention in
# half precision; SDXL; inductor; offload model/group/sequential; nf4 and int8 weights) and bench/bench_overhead.py and
# bench/bench_cache.py on CUDA; logs go to $OUT.
set -u -o pipefail
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, diffusers, transformers, peft; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
} 2>&1 | tee "$out/gpu.txt"
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/tests.log"
tests=$?
timeout 200 python3 bench/bench_overhead.py --device cuda --size 512 --steps 20 --rounds 3 --regions --control --lora \
  2>&1 | tee "$out/bench.log"
# memory: the component cache's loads and switches, and (where the card is lent long enough) offload
timeout 120 python3 bench/bench_cache.py --skip-full --workdir /tmp/bench-cache 2>&1 | tee "$out/bench_cache.log"
timeout 240 python3 bench/bench_gpu_memory.py --steps 4 --rounds 2 2>&1 | tee "$out/bench_gpu_memory.log"
exit $tests
