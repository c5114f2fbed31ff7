#!/usr/bin/env bash
# scripts/cuda.sh: driver for the CUDA addon on a GPU machine (which has nvcc and cmake but no npm).
#
#   scripts/cuda.sh pack                 HERE, before a device call: packs tape (+ deps) and node-gyp-build into
#                                        .device/test-modules.tar.xz (run ../shared/device/prep.sh first)
#   scripts/cuda.sh test     [OUTDIR]    build the addon with plain cmake, run test/cuda-smoke.test.js
#   scripts/cuda.sh memcheck [OUTDIR]    the same test under compute-sanitizer --tool memcheck
#   scripts/cuda.sh bench    [OUTDIR]    build, then run each benchmark/cuda/*.js with OUTDIR as argument
#   scripts/cuda.sh attention [OUTDIR]   flash attention in one go: build (or take an existing
#                                        $TESSERA_CUDA_ADDON), SASS check, test/cuda-attention.test.js (float64 +
#                                        torch SDPA), memcheck on its small shapes, benchmark/cuda/attention.js
#
# OUTDIR (default ./cuda-out) receives build-<mode>.log, env.txt and one log per run. dist/ (compiled TS) must
# be there: run `npm run build:ts` here and carry dist. A device call looks like
#   carry [".device", "dist"]:  source .device/boot.sh && bash scripts/cuda.sh test $OUT
set -euo pipefail

mode=${1:-}
out=${2:-./cuda-out}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { echo "cuda.sh: $*" >&2; exit 2; }

pack() {
  [ -d node_modules/tape ] || die "node_modules/tape missing: npm install first"
  mkdir -p .device
  # tape's dependency closure, as node resolves it (nested node_modules included).
  node -e '
    const path = require("path"), seen = new Set();
    function walk(name, from) {
      let pj;
      try { pj = require.resolve(name + "/package.json", { paths: [from] }); } catch { return; }
      const dir = path.dirname(pj);
      if (seen.has(dir)) return;
      seen.add(dir);
      for (const dep of Object.keys(require(pj).dependencies || {})) walk(dep, dir);
    }
    walk("tape", process.cwd());
    walk("node-gyp-build", process.cwd()); // the cpu addon loader, so the cpu backend runs there too
    for (const d of seen) console.log(path.relative(process.cwd(), d));
  ' | tar -cJf .device/test-modules.tar.xz --exclude='*.md' --exclude='*.ts' -T -
  echo "packed $(tar -tJf .device/test-modules.tar.xz | grep -c '/package.json$') packages into .device/test-modules.tar.xz ($(du -h .device/test-modules.tar.xz | cut -f1))"
}

setup() {
  command -v node >/dev/null || die "node not on PATH (on the GPU machine: source .device/boot.sh)"
  [ -f dist/backends/cuda/native.js ] || die "dist/ missing: run npm run build:ts and carry dist"
  if [ ! -d node_modules/tape ]; then
    [ -f .device/test-modules.tar.xz ] || die "tape missing: run scripts/cuda.sh pack here and carry .device"
    tar -xJf .device/test-modules.tar.xz
  fi
  for p in node-api-headers node-addon-api; do
    [ -d "node_modules/$p" ] || die "node_modules/$p missing (source .device/boot.sh)"
  done
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "node: $(node --version)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
    nvcc --version 2>&1 | tail -2 || true
    cmake --version 2>&1 | head -1
  } > "$out/env.txt"
  cat "$out/env.txt"
}

build() {
  export CUDACXX=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  local gen=()
  # A build tree keeps its generator; pick Ninja only for a fresh one.
  if [ ! -f build-cuda/CMakeCache.txt ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
  echo "building build-cuda/Release/tessera_cuda.node ..."
  if ! { cmake -S . -B build-cuda "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
           -DCMAKE_JS_INC="$root/node_modules/node-api-headers/include" \
           -DNODE_ADDON_API_DIR="$root/node_modules/node-addon-api" &&
         cmake --build build-cuda -j "$(nproc)"; } > "$out/build-$mode.log" 2>&1; then
    tail -40 "$out/build-$mode.log"
    die "build failed (full log: $out/build.log)"
  fi
  grep -iE 'warning' "$out/build-$mode.log" || true
  export TESSERA_CUDA_ADDON="$root/build-cuda/Release/tessera_cuda.node"
}

run_test() {
  # the smoke test of the addon, then the library tests with the cuda backend live (the sweep runs every
  # op on cuda tensors against the js reference). The CPU addon comes from a carried build/ if present.
  node test/cuda-smoke.test.js > "$out/cuda-smoke.tap" 2>&1 || true
  node test/run.js cuda-smoke cuda-backend sweep tensor errors async dtype 2>&1 | tee "$out/tests.log"
}

run_memcheck() {
  command -v compute-sanitizer >/dev/null || die "compute-sanitizer not on PATH"
  local log="$out/memcheck.log" rc=0
  compute-sanitizer --tool memcheck node test/cuda-smoke.test.js > "$log" 2>&1 || rc=$?
  grep -E '^(# (pass|fail|tests)|not ok)|=========' "$log" | grep -v '^=========     ' | head -60 || true
  # The test's 1 TB cudaMalloc is expected to fail; any other sanitizer report is a failure.
  local unexpected
  unexpected=$(grep -E '^========= (Invalid|Program hit|Error|Race|Uninitialized|Leaked)' "$log" |
               grep -vc 'cudaErrorMemoryAllocation' || true)
  echo "memcheck: test exit $rc, unexpected sanitizer reports: $unexpected (full log: $log)"
  [ "$rc" -eq 0 ] && [ "$unexpected" -eq 0 ]
}

run_bench() {
  shopt -s nullglob
  local files=(benchmark/cuda/*.js)
  [ ${#files[@]} -gt 0 ] || { echo "no CUDA benchmarks yet (benchmark/cuda/*.js)"; return 0; }
  for f in "${files[@]}"; do
    echo "== $f"
    node "$f" "$out" 2>&1 | tee "$out/$(basename "$f" .js).log"
  done
}

run_attention() {
  local addon="$TESSERA_CUDA_ADDON"
  echo "== SASS of the attention kernels (sm_90a)"
  if command -v cuobjdump >/dev/null; then
    cuobjdump -sass "$addon" 2>/dev/null | awk '/Function :/ {f = $3} f ~ /attn_sm90/ {print}' |
      grep -oE 'HGMMA\.[0-9A-Zx.]*|UTMALDG\.[0-9A-Z.]*|UTMASTG\.[0-9A-Z.]*|USETMAXREG[.A-Z0-9]*|MUFU\.EX2|SYNCS\.[A-Z.]*' |
      sort | uniq -c | tee "$out/attention-sass.txt"
  fi
  echo "== test/cuda-attention.test.js"
  local rc=0
  # time limits: a kernel that deadlocks must not eat the whole device call
  ATTN_OUT="$out" timeout "${ATTN_TEST_S:-300}" node test/cuda-attention.test.js > "$out/attention-test.tap" 2>&1 || rc=$?
  grep -E '^(not ok|# )' "$out/attention-test.tap" | grep -v '^# cuda attention' | head -150
  echo "attention test exit $rc"
  if [ "$rc" -eq 124 ]; then tail -5 "$out/attention-test.tap"; echo "timed out: skipping memcheck and benchmark"; return 1; fi
  # On Hopper, decode loads K/V through TMA; the 16-byte cp.async path (every other GPU) is tested here too.
  echo "== test/cuda-attention.test.js, decode with cp.async loads (TESSERA_ATTN_DECODE_TMA=0)"
  local crc=0
  TESSERA_ATTN_DECODE_TMA=0 ATTN_TEST_VARIANTS=decode timeout "${ATTN_TEST_S:-300}" node test/cuda-attention.test.js \
    > "$out/attention-test-cpasync.tap" 2>&1 || crc=$?
  grep -E '^(not ok|# (pass|fail|tests))' "$out/attention-test-cpasync.tap" | head -40
  echo "attention test (cp.async decode) exit $crc"
  echo "== memcheck (small shapes)"
  local mrc=0
  ATTN_QUICK=1 timeout "${ATTN_MEMCHECK_S:-180}" compute-sanitizer --tool memcheck node test/cuda-attention.test.js > "$out/attention-memcheck.log" 2>&1 || mrc=$?
  grep -E '^(# (pass|fail|tests)|not ok)|ERROR SUMMARY' "$out/attention-memcheck.log" | head -20
  echo "memcheck exit $mrc"
  echo "== benchmark"
  timeout "${ATTN_BENCH_S:-240}" node benchmark/cuda/attention.js "$out" 2>&1 | tee "$out/attention-bench.log"
}

case "$mode" in
  pack) pack ;;
  test) setup; build; run_test ;;
  memcheck) setup; build; run_memcheck ;;
  bench) setup; build; run_bench ;;
  attention) setup; if [ -f "${TESSERA_CUDA_ADDON:-}" ]; then echo "using $TESSERA_CUDA_ADDON"; else build; fi; run_attention ;;
  *) die "usage: scripts/cuda.sh pack | test|memcheck|bench|attention [OUTDIR]" ;;
esac
