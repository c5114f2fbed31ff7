// peak: this machine's arithmetic ceilings, measured by register-only calibration loops (no memory
// traffic), the roofs that "% of peak" in the benchmark and profiler means:
//   fp32  vfmadd231ps ymm on 12 independent accumulators (latency 4-5 x 2 FMA pipes needs >= 10);
//         16 FLOP per instruction.
//   int8  the exact int8 product pair of the W8A8 tile (qgemm_int8_avx2.cc), vpmaddwd into a
//         temporary then vpaddd into one of 6 accumulators; 16 MACs = 32 ops per pair. Without VNNI
//         no exact int8 multiply-accumulate does better (vpmaddubsw needs a sign fix-up per product
//         and a widening vpmaddwd: 4 ALU ops per 32 MACs, the same rate).
// read_bandwidth: each thread reads its own slice of a buffer front to back as 4 interleaved
// sub-streams (more misses in flight than one stream; a single stream read ~17-22 GB/s on 2 threads
// of this VM against ~25-35 GB/s for 4-8), 64 bytes per stream per step, OR-ed into 8 ymm registers
// (integer ops: no FP-latency chain limits the load rate); the portable build sums uint64 words.
// Each run spreads `tasks` equal chunks over the thread pool (so every pool thread runs them
// concurrently once it is awake) and counts operations over the wall time of the whole parallel
// region; the best of a few runs is kept. AVX2+FMA only: on other machines peak_rate returns 0.
#include "peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "avx2_target.h"
#include "cpu_features.h"
#include "scratch.h"
#include "thread_pool.h"

namespace tessera {

namespace {

#if defined(__x86_64__) && defined(__GNUC__)

constexpr double k_fma_ops_per_iter = 12 * 16;       // 12 FMAs x 8 lanes x 2 FLOP
constexpr double k_int8_ops_per_iter = 6 * 16 * 2;   // 6 vpmaddwd x 16 MACs x 2 ops

// Runs `body` iters times (iters > 0) after `init`, entirely in registers; ymm0-11, 14 and 15 used.
#define TESSERA_PEAK_LOOP(init, body)                                                              \
  __asm__ volatile(init "1:\n\t" body "dec %[n]\n\tjnz 1b\n\tvzeroupper"                          \
                   : [n] "+r"(iters)                                                                \
                   :                                                                                \
                   : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",  \
                     "xmm9", "xmm10", "xmm11", "xmm14", "xmm15")

#define TESSERA_FMA(d) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #d "\n\t"
#define TESSERA_ZERO(d) "vpxor %%ymm" #d ", %%ymm" #d ", %%ymm" #d "\n\t"
// the int8 pair: product into temporary t, then added into accumulator a
#define TESSERA_MADD_ADD(t, a) \
  "vpmaddwd %%ymm14, %%ymm15, %%ymm" #t "\n\tvpaddd %%ymm" #t ", %%ymm" #a ", %%ymm" #a "\n\t"

TESSERA_AVX2 void fma_loop(int64_t iters) {
  if (iters <= 0) return;
  TESSERA_PEAK_LOOP(TESSERA_ZERO(0) TESSERA_ZERO(1) TESSERA_ZERO(2) TESSERA_ZERO(3) TESSERA_ZERO(4)
                        TESSERA_ZERO(5) TESSERA_ZERO(6) TESSERA_ZERO(7) TESSERA_ZERO(8) TESSERA_ZERO(9)
                            TESSERA_ZERO(10) TESSERA_ZERO(11) TESSERA_ZERO(14) TESSERA_ZERO(15),
                    TESSERA_FMA(0) TESSERA_FMA(1) TESSERA_FMA(2) TESSERA_FMA(3) TESSERA_FMA(4)
                        TESSERA_FMA(5) TESSERA_FMA(6) TESSERA_FMA(7) TESSERA_FMA(8) TESSERA_FMA(9)
                            TESSERA_FMA(10) TESSERA_FMA(11));
}

TESSERA_AVX2 void int8_loop(int64_t iters) {
  if (iters <= 0) return;
  TESSERA_PEAK_LOOP(TESSERA_ZERO(0) TESSERA_ZERO(1) TESSERA_ZERO(2) TESSERA_ZERO(3) TESSERA_ZERO(4)
                        TESSERA_ZERO(5) "vpcmpeqw %%ymm14, %%ymm14, %%ymm14\n\t"
                        "vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n\t",
                    TESSERA_MADD_ADD(6, 0) TESSERA_MADD_ADD(7, 1) TESSERA_MADD_ADD(8, 2)
                        TESSERA_MADD_ADD(9, 3) TESSERA_MADD_ADD(10, 4) TESSERA_MADD_ADD(11, 5));
}

#endif

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

volatile uint64_t g_sink;  // keeps the reads of read_slice alive

// Reads n uint64 words (a multiple of 32) as 4 sub-streams of n / 4 words.
uint64_t read_slice_generic(const uint64_t* p, int64_t n) {
  const int64_t q = n / 4;
  uint64_t s[8] = {};
  for (int64_t i = 0; i < q; i += 2)
    for (int j = 0; j < 4; ++j) {
      s[2 * j] += p[j * q + i];
      s[2 * j + 1] += p[j * q + i + 1];
    }
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

#if defined(__x86_64__) && defined(__GNUC__)
TESSERA_AVX2 uint64_t read_slice_avx2(const uint64_t* p, int64_t n) {
  const int64_t q = n / 4;  // words per sub-stream, a multiple of 8 (64 bytes)
  __m256i a[8];
  for (auto& v : a) v = _mm256_setzero_si256();
  for (int64_t i = 0; i < q; i += 8)
    for (int j = 0; j < 4; ++j) {
      const __m256i* s = reinterpret_cast<const __m256i*>(p + j * q + i);
      a[2 * j] = _mm256_or_si256(a[2 * j], _mm256_load_si256(s));
      a[2 * j + 1] = _mm256_or_si256(a[2 * j + 1], _mm256_load_si256(s + 1));
    }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_or_si256(a[0], a[j]);
  alignas(32) uint64_t lane[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane), a[0]);
  return lane[0] | lane[1] | lane[2] | lane[3];
}
#endif

}  // namespace

double read_bandwidth(double bytes, double seconds, bool parallel) {
  bytes = std::clamp(bytes, 1048576.0, 1073741824.0);
  seconds = std::clamp(seconds, 1e-3, 10.0);
  const int threads = parallel ? std::max(1, num_threads()) : 1;
  // 4 slices per thread (a helper that wakes late still finds work), each a multiple of 4 x 64 bytes
  const int64_t tasks = int64_t{4} * threads;
  const int64_t slice = std::max<int64_t>(32, static_cast<int64_t>(bytes / 8.0 / static_cast<double>(tasks)) / 32 * 32);
  const int64_t words = slice * tasks;
  detail::aligned_ptr<uint64_t> buf = detail::alloc_aligned<uint64_t>(static_cast<size_t>(words));
  const bool par = parallel && threads > 1;
  // first touch by the pool (pages land where the readers run), every word written
  run_tasks(par, tasks, [&](int64_t t) {
    uint64_t* p = buf.get() + t * slice;
    for (int64_t i = 0; i < slice; ++i) p[i] = static_cast<uint64_t>(t * slice + i);
  });
#if defined(__x86_64__) && defined(__GNUC__)
  const bool avx2 = active_simd() == simd_level::avx2_fma;
#else
  const bool avx2 = false;
#endif
  auto read = [&](const uint64_t* p, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (avx2) return read_slice_avx2(p, n);
#endif
    return read_slice_generic(p, n);
  };
  double best = 0.0;
  const auto start = clock_type::now();
  for (int pass = 0; pass < 2 || seconds_since(start) < seconds; ++pass) {
    std::atomic<uint64_t> acc{0};
    const auto t0 = clock_type::now();
    run_tasks(par, tasks, [&](int64_t t) { acc.fetch_or(read(buf.get() + t * slice, slice), std::memory_order_relaxed); });
    const double wall = seconds_since(t0);
    g_sink = g_sink + acc.load();
    if (wall > 0.0) best = std::max(best, static_cast<double>(words) * 8.0 / wall);
    if (pass >= 1000) break;
  }
  return best;
}

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
