#!/usr/bin/env bash
# The GPU check of issue 14, on a GPU machine, from the repo root, with target/gpu-pack carried there (made
# by build.sh; the machine needs no Rust and no network). In one run of under 10 minutes:
#   (a) the CUDA parity tests (model/tests/cuda_parity.rs) and the offload tests (model/tests/offload.rs);
#   (b) 1024², 50 steps, bf16, text-to-image with the official default settings (KV cache, separate CFG
#       branches) on random weights of the real config: seconds per image and per step, peak GPU memory;
#       the same with 8-bit weights, with offload, and with one and two 1024² input images.
# Results: $OUT (or target/gpu-out) — results.jsonl (one line per setting), the test logs, gpu.txt.
set -uo pipefail
pack=${PACK:-target/gpu-pack}
out=${OUT:-target/gpu-out}
mkdir -p "$out"
bin=$(mktemp -d)
for f in "$pack"/*.xz; do xz -dc "$f" > "$bin/$(basename "${f%.xz}")"; chmod +x "$bin/$(basename "${f%.xz}")"; done

# The CUDA runtime libraries of the machine's PyTorch (nvidia-* wheels), then a system toolkit if any.
libs=$(python3 - <<'PY'
import glob, os, site, sys
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for so in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(so))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=${libs}:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# The tests read their fixtures under the folder they were built in.
build_root=$(cat "$pack/build_root")
if [ ! -e "$build_root/model/tests/fixtures" ]; then
  mkdir -p "$(dirname "$build_root")" && ln -sfn "$PWD" "$build_root"
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

# (a) parity
for t in cuda_parity offload; do
  [ -x "$bin/$t" ] || continue
  timeout 150 "$bin/$t" --test-threads 1 > "$out/test_$t.txt" 2>&1
  echo "$t: exit $? — $(grep -E '^test result' "$out/test_$t.txt" | tail -1)"
done

# (b) timings; peak GPU memory polled every 20 ms from outside (the CUDA context included).
measure() {
  local name=$1 limit=$2; shift 2
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$out/mem_$name.txt" &
  local smi=$!
  timeout "$limit" "$bin/bench_sample" --device cuda "$@" > "$out/bench_$name.json" 2> "$out/bench_$name.err"
  local rc=$?
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  local peak; peak=$(sort -n "$out/mem_$name.txt" | tail -1)
  local bench; bench=$(cat "$out/bench_$name.json"); [ -n "$bench" ] || bench=null
  echo "{\"name\":\"$name\",\"exit\":$rc,\"peak_gpu_mib\":${peak:-null},\"bench\":$bench}" | tee -a "$out/results.jsonl"
}
: > "$out/results.jsonl"
measure bf16            90 --dtype bf16
measure q8              90 --dtype bf16 --format q8
measure q4              90 --dtype bf16 --format q4
measure bf16_offload   120 --dtype bf16 --offload-model --offload-kv-cache
measure bf16_1image     90 --dtype bf16 --images 1
measure bf16_2images   120 --dtype bf16 --images 2
rm -rf "$bin"
