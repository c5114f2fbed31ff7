// peak: this machine's arithmetic ceilings, measured by register-only calibration loops (no memory
// traffic), the roofs that "% of peak" in the benchmark and profiler means:
//   fp32  vfmadd231ps ymm on 12 independent accumulators (latency 4-5 x 2 FMA pipes needs >= 10);
//         16 FLOP per instruction.
//   int8  the exact int8 product pair of the W8A8 tile (qgemm_int8_avx2.cc), vpmaddwd into a
//         temporary then vpaddd into one of 6 accumulators; 16 MACs = 32 ops per pair. Without VNNI
//         no exact int8 multiply-accumulate does better (vpmaddubsw needs a sign fix-up per product
//         and a widening vpmaddwd: 4 ALU ops per 32 MACs, the same rate).
// Each run spreads `tasks` equal chunks over the thread pool (so every pool thread runs them
// concurrently once it is awake) and counts operations over the wall time of the whole parallel
// region; the best of a few runs is kept. AVX2+FMA only: on other machines peak_rate returns 0.
#include "peak.h"

#include <algorithm>
#include <chrono>

#include "avx2_target.h"
#include "cpu_features.h"
#include "thread_pool.h"

namespace tessera {

namespace {

#if defined(__x86_64__) && defined(__GNUC__)

constexpr double k_fma_ops_per_iter = 12 * 16;       // 12 FMAs x 8 lanes x 2 FLOP
constexpr double k_int8_ops_per_iter = 6 * 16 * 2;   // 6 vpmaddwd x 16 MACs x 2 ops

TESSERA_AVX2 void fma_loop(int64_t iters) {
  if (iters <= 0) return;
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"
      "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"
      "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
      "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
      "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
      "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
      "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
      "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
      "vxorps %%ymm14, %%ymm14, %%ymm14\n\t"
      "vxorps %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper"
      : [n] "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm14", "xmm15");
}

TESSERA_AVX2 void int8_loop(int64_t iters) {
  if (iters <= 0) return;
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vpxor %%ymm1, %%ymm1, %%ymm1\n\t"
      "vpxor %%ymm2, %%ymm2, %%ymm2\n\t"
      "vpxor %%ymm3, %%ymm3, %%ymm3\n\t"
      "vpxor %%ymm4, %%ymm4, %%ymm4\n\t"
      "vpxor %%ymm5, %%ymm5, %%ymm5\n\t"
      "vpcmpeqw %%ymm14, %%ymm14, %%ymm14\n\t"
      "vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm6\n\t"
      "vpaddd %%ymm6, %%ymm0, %%ymm0\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm7\n\t"
      "vpaddd %%ymm7, %%ymm1, %%ymm1\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n\t"
      "vpaddd %%ymm8, %%ymm2, %%ymm2\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n\t"
      "vpaddd %%ymm9, %%ymm3, %%ymm3\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n\t"
      "vpaddd %%ymm10, %%ymm4, %%ymm4\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n\t"
      "vpaddd %%ymm11, %%ymm5, %%ymm5\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper"
      : [n] "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm14", "xmm15");
}

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

#endif

}  // namespace

double peak_rate(peak_kind kind, double seconds, bool parallel) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (active_simd() != simd_level::avx2_fma) return 0.0;
  void (*loop)(int64_t) = kind == peak_kind::fp32 ? fma_loop : int8_loop;
  const double ops_per_iter = kind == peak_kind::fp32 ? k_fma_ops_per_iter : k_int8_ops_per_iter;
  seconds = std::clamp(seconds, 1e-3, 10.0);
  // Iterations per second of one thread, from a short run that also brings the core up to speed.
  int64_t probe = 1 << 14;
  double t = 0.0;
  for (;;) {
    const auto t0 = clock_type::now();
    loop(probe);
    t = seconds_since(t0);
    if (t >= 2e-3 || probe >= (int64_t{1} << 40)) break;
    probe *= 4;
  }
  const double iters_per_s = static_cast<double>(probe) / std::max(t, 1e-9);
  const int threads = parallel ? std::max(1, num_threads()) : 1;
  // 3 runs of seconds / 3 each, 8 chunks per thread: a helper that wakes late still finds work.
  const int64_t tasks = int64_t{8} * threads;
  const int64_t chunk =
      std::max<int64_t>(1, static_cast<int64_t>(iters_per_s * seconds / 3.0 / 8.0));
  double best = 0.0;
  for (int run = 0; run < 3; ++run) {
    const auto t0 = clock_type::now();
    run_tasks(parallel && threads > 1, tasks, [&](int64_t) { loop(chunk); });
    const double wall = seconds_since(t0);
    if (wall > 0.0) best = std::max(best, ops_per_iter * static_cast<double>(chunk * tasks) / wall);
  }
  return best;
#else
  (void)kind;
  (void)seconds;
  (void)parallel;
  return 0.0;
#endif
}

}  // namespace tessera
