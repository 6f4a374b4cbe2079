#!/usr/bin/env bash
# Runs the WebGPU benchmark on a lent GPU machine (see BENCHMARKS.md). Expects, carried with the
# working tree: dist/ (npm run build), .devrun/ (node.xz, dawn.node.xz, flatbuffers/, webgpu/,
# mobilefacenet.onnx, crops.f32, reference.f32) and .gl/ (Vulkan loader .debs).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; fi
mkdir -p /tmp/nodebin node_modules/webgpu/dist/linux-x64
xz -dc .devrun/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
xz -dc .devrun/dawn.node.xz > node_modules/webgpu/dist/linux-x64/dawn.node
cp .devrun/webgpu/* node_modules/webgpu/ && cp -r .devrun/flatbuffers node_modules/
export PATH=/tmp/nodebin:$PATH
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
node dist/src/cli.js info 2>&1 | tee -a "$OUT/gpu.txt" || true
timeout 300 node scripts/gpu-bench.mjs --crops .devrun/crops.f32 --reference .devrun/reference.f32 --batches 1,16,64,256,1024 --runs 9 --out "$OUT/webgpu.json" 2>&1 | grep -v 'artificially reduced' | tee "$OUT/webgpu.txt"
timeout 120 python3 - <<'PY' 2>&1 | tee "$OUT/ort.txt"
import time, numpy as np, onnxruntime as ort, os, json
crops = np.fromfile('.devrun/crops.f32', dtype=np.float32).reshape(-1, 112, 112, 3)
res = {}
for threads in (1, 16):
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    s = ort.InferenceSession('.devrun/mobilefacenet.onnx', so, providers=['CPUExecutionProvider'])
    name = s.get_inputs()[0].name
    for n in (1, 16, 64, 256):
        x = np.concatenate([crops] * (n // 16 + 1))[:n]
        s.run(None, {name: x}); s.run(None, {name: x})
        ts = []
        for _ in range(5):
            t = time.perf_counter(); s.run(None, {name: x}); ts.append(time.perf_counter() - t)
        m = sorted(ts)[2]
        print(f'onnxruntime CPU {threads} threads batch {n}: {n / m:.1f} faces/s ({m * 1000:.2f} ms)')
        res[f'{threads}:{n}'] = n / m
json.dump(res, open(os.environ.get('OUT', '/tmp') + '/ort.json', 'w'))
PY

# Search at 1M vectors (needs .devrun/nm.tar.xz: hnswlib-node, better-sqlite3, drizzle-orm built here).
if [ -f .devrun/nm.tar.xz ] && [ -n "${SEARCH_SIZES:-}" ]; then
  tar xJf .devrun/nm.tar.xz
  timeout "${SEARCH_TIMEOUT:-300}" node scripts/search-bench-run.mjs --sizes "$SEARCH_SIZES" --ef 64,128,256 --queries 300 --out "$OUT/search.json" 2>&1 | tee "$OUT/search.txt"
fi
