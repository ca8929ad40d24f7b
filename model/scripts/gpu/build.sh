#!/usr/bin/env bash
# Builds the CUDA binaries for the GPU check (model/scripts/gpu/run.sh) on a machine without a GPU, and packs
# them into target/gpu-pack/ (a few MB), to be carried to a GPU machine that has no network and no Rust.
#
#   bash model/scripts/gpu/build.sh        # ~15-25 min on 2 cores the first time
#
# What it needs: python3 with venv and pip (NVIDIA's PyPI wheels give nvcc and the CUDA headers and
# libraries), gcc, cargo. The CUDA version must not be newer than the GPU machine's driver (CUDA 13.0 on the
# machines seen so far: CUDA_PIP below pins 13.0). The GPU machine provides libcuda (its driver) and the
# CUDA runtime libraries (its PyTorch's nvidia-* packages); run.sh finds them there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
pack=$CARGO_TARGET_DIR/gpu-pack
venv=$CARGO_TARGET_DIR/cuda-venv
home=$CARGO_TARGET_DIR/cudahome
CUDA_PIP=${CUDA_PIP:-"cuda-toolkit[nvcc,crt,nvvm,cudart,cublas,curand,nvrtc,cccl]==13.0.2"}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}   # H100 / H200

# 1. The toolkit from PyPI, and a CUDA_HOME laid out as the build scripts expect.
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! ls "$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
  "$venv/bin/pip" install -q "$CUDA_PIP"
fi
cu=$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13)
rm -rf "$home"; mkdir -p "$home/lib64/stubs"
for d in bin include nvvm; do ln -s "$cu/$d" "$home/$d"; done
for l in "$cu"/lib/lib*.so.*; do
  name=$(basename "$l"); ln -sf "$l" "$home/lib64/$name"; ln -sf "$l" "$home/lib64/${name%%.so*}.so"
done
# 2. A link-time stub of the driver library (the real one comes with the GPU machine's driver): one dummy
#    function per driver symbol cudarc declares.
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -1 || true)
if [ -z "$cudarc" ]; then cargo fetch --quiet; cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -1); fi
grep -ohE '^\s+(pub )?fn cu[A-Za-z0-9_]+\(' "$cudarc"/src/driver/sys/*.rs | sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
  | awk '{print "int "$1"(void){return 999;}"}' > "$home/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$home/lib64/stubs/libcuda.so" "$home/stub.c"
export CUDA_HOME=$home PATH=$home/bin:$PATH
export LIBRARY_PATH=$home/lib64/stubs:$home/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}

# 3. The binaries: the sampling bench, and the model tests that compare CUDA with the CPU and the reference.
exes() { grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | grep -v '^null$'; }
bench=$(cargo bench -p omnigen-model --features cuda --bench bench_sample --no-run --message-format=json 2>/dev/null | exes)
tests=$(cargo test --release -p omnigen-model --features cuda --test cuda_parity --test offload --no-run --message-format=json 2>/dev/null | exes)

rm -rf "$pack"; mkdir -p "$pack"
cp "$bench" "$pack/bench_sample"
for t in $tests; do n=$(basename "$t"); cp "$t" "$pack/${n%-*}"; done
strip "$pack"/* 2>/dev/null || true
xz -T0 -6 "$pack"/*
# The tests find their fixtures under the path they were built in; run.sh links it to the carried tree.
echo "$root" > "$pack/build_root"
ls -la "$pack"
echo "packed: carry ${pack#"$root"/} to the GPU machine and run model/scripts/gpu/run.sh there"
