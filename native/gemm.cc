// HELPER: READ /tmp/common.md NOW (rules: build command, timing lock, commits, deadline 23:30 UTC). Delete this line.
// gemm: batched f32 GEMM, out[b] = op(A[b]) @ op(B[b]), row-major, overwrite.
//
// Algorithm (Goto/BLIS style):
//   for jc in N by NC:                      B panel, KC x NC packed, shared (L3)
//     for pc in K by KC:                    pack B panel in parallel (16-col slivers)
//       parallel over (MC block, column range) tasks:
//         pack A block MC x KC (thread-local, L2) as 6-row slivers
//         for each 16-col B sliver (L1) x each 6-row A sliver: micro-kernel
// The first KC block stores into C, later ones add, so C is never read before
// it is written (NaN-poisoned outputs are fine) and, for a fixed KC, every
// element is summed in the same order whatever the thread count or task split:
// results are bit-identical across thread counts, task splits and tile edges.
// transA/transB and batch strides are absorbed by the packing routines, which
// read either layout; padding rows/cols of a sliver are zero-filled.
//
// Layouts: A is [M][K] ([K][M] if transA), B is [K][N] ([N][K] if transB), out
// [batch][M][N]; stride 0 broadcasts one matrix to every batch. When B is
// broadcast and A is a dense non-transposed stack, the batch folds into M.
// Small problems skip the pool; many small batches run one matrix per task.
// 4 < M <= 192 (LLM linear at prefill / small batch): gemm_stream_b, one A block
// packed once for all of K, tasks over column chunks that pack their own B chunk
// (L2) per KC step, software-prefetching the next step's B rows (every row of B
// is another DRAM page, which hardware prefetchers do not cross). Same kernel and
// KC order as above, so results equal the panel path bit for bit. 2 threads, the
// shared VM below: 16x4096x11008 ~110 -> ~40 ms, 128x4096x4096 ~100 -> ~65 ms.
// M <= 4 (decode-time GEMV) on AVX2 skips packing entirely (gemm_avx2.cc): dot
// products along K when B is [N][K], row-axpy over K when B is [K][N]; B is
// streamed from memory exactly once, in column chunks that are split over tasks.
//
// Block sizes for Zen3/Skylake-class cores (32-48 KB L1d, 512 KB-1 MB L2): KC=256
// (B sliver 16 KB), MC=120 (A block 120 KB), NC=2048 (B panel 2 MB).
// Micro-kernels: 6x16 AVX2+FMA (gemm_avx2.cc), 4x8 portable C++ (below, which
// GCC vectorizes with baseline SSE2).
// Tolerance: f32 accumulate, ||out-ref||/||ref|| ~1e-6 for K <= 4096 vs float64.
// Roofline: AVX2 FMA peak is 32 flop/cycle/core; the 6x16 kernel alone reaches
// ~100 GFLOP/s/core in L1 on Zen3 (~3.2 GHz), i.e. near peak. matmulF32 square,
// 2 threads, best of runs: Zen3 EPYC VM (shared, noisy) 512: 131, 1024: 151,
// 2048: 157 GFLOP/s; idle Xeon VM pinned to 2 cores: 138 / 137 / 117 (1 thread:
// 75 / 75 / 73). Generic path, 2 threads: ~30-50 GFLOP/s. M = 1 (4096 x 4096):
// ~1.4 ms, i.e. ~45 GB/s of B, memory bound.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "cpu_features.h"
#include "thread_pool.h"

namespace tessera {

namespace {

constexpr int64_t k_kc = 256;
constexpr int64_t k_mc = 120;   // multiple of both mr (6 and 4)
constexpr int k_max_mr = 8;
constexpr int64_t k_stream_m = 192;  // m <= this: gemm_stream_b (A block fits L2)

// Element (i, p) of A is at a[i * rs + p * cs]; likewise for B with (p, j).
struct mat_view {
  const float* p;
  int64_t rs;
  int64_t cs;
};

class aligned_floats {
 public:
  ~aligned_floats() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
      const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (p_ == nullptr) throw std::bad_alloc();
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local aligned_floats tls_b_panel;
thread_local aligned_floats tls_a_full;  // gemm_stream_b: A packed for all of K (caller)

// dst[p * mr + ii] = A(i0 + ii, p0 + p), zero for ii >= rows.
void pack_a_sliver(float* dst, const mat_view& a, int64_t i0, int rows, int64_t p0,
                   int64_t kc, int mr) {
  if (a.rs == 1) {  // transA: a column of A (fixed p) is contiguous in i
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = a.p + (p0 + p) * a.cs + i0;
      float* d = dst + p * mr;
      for (int ii = 0; ii < rows; ++ii) d[ii] = src[ii];
      for (int ii = rows; ii < mr; ++ii) d[ii] = 0.0f;
    }
    return;
  }
  // mr 6 means the AVX2 kernel was selected, so AVX2 is there
  if (a.cs == 1 && mr == 6 && rows == 6 &&
      detail::gemm_pack_a6_avx2(dst, a.p + i0 * a.rs + p0, a.rs, kc))
    return;
  const float* row[k_max_mr];
  for (int ii = 0; ii < rows; ++ii) row[ii] = a.p + (i0 + ii) * a.rs + p0 * a.cs;
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * mr;
    for (int ii = 0; ii < rows; ++ii) d[ii] = row[ii][p * a.cs];
    for (int ii = rows; ii < mr; ++ii) d[ii] = 0.0f;
  }
}

// dst[p * nr + jj] = B(p0 + p, j0 + jj), zero for jj >= cols.
void pack_b_sliver(float* dst, const mat_view& b, int64_t j0, int cols, int64_t p0,
                   int64_t kc, int nr) {
  if (b.cs == 1) {  // B row-major [K][N]: a row of the sliver is contiguous
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b.p + (p0 + p) * b.rs + j0;
      float* d = dst + p * nr;
      for (int jj = 0; jj < cols; ++jj) d[jj] = src[jj];
      for (int jj = cols; jj < nr; ++jj) d[jj] = 0.0f;
    }
    return;
  }
  // transB [N][K]: walk each column (contiguous in p) in chunks so the nr source
  // streams stay in L1 while the destination is written in order.
  constexpr int64_t chunk = 64;
  for (int64_t pb = 0; pb < kc; pb += chunk) {
    const int64_t pe = std::min(kc, pb + chunk);
    for (int jj = 0; jj < cols; ++jj) {
      const float* src = b.p + (j0 + jj) * b.cs + (p0 + pb) * b.rs;
      for (int64_t p = pb; p < pe; ++p) dst[p * nr + jj] = src[(p - pb) * b.rs];
    }
    for (int jj = cols; jj < nr; ++jj)
      for (int64_t p = pb; p < pe; ++p) dst[p * nr + jj] = 0.0f;
  }
}

// Row-major B, n_sl full slivers of NR columns: dst[s][p][jj] = src[p * ld + s * NR + jj].
// Row by row, so each source row segment is one contiguous read.
// Every row is a different DRAM page (ld is large), which the hardware prefetchers
// do not run ahead across, so rows k_pf_rows ahead are prefetched in software.
template <int NR>
void pack_b_rows(float* __restrict dst, const float* __restrict src, int64_t ld, int64_t kc,
                 int64_t n_sl) {
  constexpr int64_t k_pf_rows = 8;
  for (int64_t p = 0; p < kc; ++p) {
    const float* row = src + p * ld;
#if defined(__GNUC__)
    if (p + k_pf_rows < kc) {
      const float* ahead = row + k_pf_rows * ld;
      for (int64_t x = 0; x < n_sl * NR; x += 16) __builtin_prefetch(ahead + x, 0, 0);
      __builtin_prefetch(ahead + n_sl * NR - 1, 0, 0);
    }
#endif
    float* d = dst + p * NR;
    for (int64_t s = 0; s < n_sl; ++s)
      for (int jj = 0; jj < NR; ++jj) d[s * kc * NR + jj] = row[s * NR + jj];
  }
}

// transB: the next sliver's cols rows of kc floats, one prefetch per cache line
// (nr separate rows are more streams than the hardware prefetchers follow).
void prefetch_b_cols(const mat_view& b, int64_t j0, int cols, int64_t p0, int64_t kc) {
#if defined(__GNUC__)
  for (int jj = 0; jj < cols; ++jj) {
    const float* src = b.p + (j0 + jj) * b.cs + p0;
    for (int64_t p = 0; p < kc; p += 16) __builtin_prefetch(src + p, 0, 0);
  }
#else
  (void)b, (void)j0, (void)cols, (void)p0, (void)kc;
#endif
}

// Part `part` of `parts` of B(p0 .. p0+kc, j0 .. j0+cols) toward L2: rows of
// row-major B, or columns (rows of the [N][K] storage) of transB.
void prefetch_b_part(const mat_view& b, int64_t j0, int64_t cols, int64_t p0, int64_t kc,
                     int64_t part, int64_t parts) {
#if defined(__GNUC__)
  if (b.cs == 1) {
    for (int64_t p = p0 + part * kc / parts; p < p0 + (part + 1) * kc / parts; ++p) {
      const float* row = b.p + p * b.rs + j0;
      for (int64_t x = 0; x < cols; x += 16) __builtin_prefetch(row + x, 0, 2);
      __builtin_prefetch(row + cols - 1, 0, 2);
    }
  } else {
    for (int64_t j = j0 + part * cols / parts; j < j0 + (part + 1) * cols / parts; ++j) {
      const float* src = b.p + j * b.cs + p0 * b.rs;
      for (int64_t p = 0; p < kc; p += 16) __builtin_prefetch(src + p, 0, 2);
      __builtin_prefetch(src + kc - 1, 0, 2);
    }
  }
#else
  (void)b, (void)j0, (void)cols, (void)p0, (void)kc, (void)part, (void)parts;
#endif
}

// Portable 4x8 micro-kernel: plain loops over a fixed-size accumulator tile.
void kernel_generic_4x8(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                        int m_valid, int n_valid, bool accumulate) {
  float t[4][8] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* a = ap + p * 4;
    const float* b = bp + p * 8;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 8; ++j) t[i][j] += a[i] * b[j];
  }
  for (int i = 0; i < m_valid; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      for (int j = 0; j < n_valid; ++j) row[j] += t[i][j];
    } else {
      for (int j = 0; j < n_valid; ++j) row[j] = t[i][j];
    }
  }
}

detail::gemm_kernel_info select_kernel() {
  if (active_simd() == simd_level::avx2_fma) {
    const detail::gemm_kernel_info k = detail::gemm_kernel_avx2();
    if (k.kernel != nullptr) return k;
  }
  return {4, 8, &kernel_generic_4x8};
}

template <class F>
void run_tasks(bool parallel, int64_t n, F&& f) {
  if (parallel) {
    parallel_for(n, f);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- gemm_packed: the large-M driver ---------------------------------------------
//
// One parallel_for per call, run by `members` (one per pool thread). A round packs A
// rows [i_lo, i_hi) and B columns [j_lo, j_hi) whole, for all of K, into one shared
// buffer (A as [kc block][6-row sliver][kc][mr], B as [kc block][16-col sliver][kc][nr]),
// then computes the C tiles of that row x column range. Members claim pack units from a
// counter and tiles from per-member ranges (stealing from the others' tails when their
// own runs dry). A member only ever waits for units some other member has already
// claimed and is running, so the call completes whatever number of pool threads turn up
// (a late or absent helper just leaves more work to the caller), and it waits by
// spinning: on a VM a thread that sleeps for more than ~0.2 ms takes about a millisecond
// to wake (halted vCPU), which cost more than the whole call's imbalance.

inline void cpu_relax() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_ia32_pause();
#endif
}

template <class Pred>
void spin_until(Pred done) {
  for (int i = 0; !done(); ++i) {
    if (i < (1 << 14)) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // the member we wait for may have been preempted
    }
  }
}

// Large scratch buffers, shared by every caller: concurrent calls each take one. Kept
// (not freed) between calls because a fresh 16-32 MB buffer costs thousands of page
// faults on first touch.
class buffer_cache {
 public:
  struct lease {
    float* p;
    size_t cap;
  };
  lease acquire(size_t n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].cap >= n && (best == free_.size() || free_[i].cap < free_[best].cap)) best = i;
      if (best < free_.size()) {
        const lease l = free_[best];
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        return l;
      }
    }
    const size_t bytes = (n * sizeof(float) + 4095) / 4096 * 4096;
    float* p = static_cast<float*>(std::aligned_alloc(4096, bytes));
    if (p == nullptr) throw std::bad_alloc();
    return {p, bytes / sizeof(float)};
  }
  void release(lease l) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(l);
    if (free_.size() > k_keep) {  // drop the smallest
      auto it = std::min_element(free_.begin(), free_.end(),
                                 [](const lease& x, const lease& y) { return x.cap < y.cap; });
      std::free(it->p);
      free_.erase(it);
    }
  }

 private:
  static constexpr size_t k_keep = 4;
  std::mutex mu_;
  std::vector<lease> free_;
};

buffer_cache& the_buffer_cache() {
  static buffer_cache* c = new buffer_cache();  // leaked: pool workers may outlive statics
  return *c;
}

struct scoped_buffer {
  explicit scoped_buffer(size_t n) : l(the_buffer_cache().acquire(n)) {}
  ~scoped_buffer() { the_buffer_cache().release(l); }
  scoped_buffer(const scoped_buffer&) = delete;
  scoped_buffer& operator=(const scoped_buffer&) = delete;
  buffer_cache::lease l;
};

// Caps on one round's packed A and B (floats): 2048^2 each fits in one round.
constexpr int64_t k_round_floats = int64_t{1} << 22;

// Tile ranges of one member, [lo, hi) packed into one word so claim and steal are CAS.
struct alignas(64) tile_range {
  std::atomic<uint64_t> v{0};
  static uint64_t make(uint32_t lo, uint32_t hi) { return (uint64_t{hi} << 32) | lo; }
  bool take_front(int64_t& t) {
    uint64_t x = v.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t lo = static_cast<uint32_t>(x), hi = static_cast<uint32_t>(x >> 32);
      if (lo >= hi) return false;
      if (v.compare_exchange_weak(x, make(lo + 1, hi), std::memory_order_relaxed)) {
        t = lo;
        return true;
      }
    }
  }
  bool take_back(int64_t& t) {
    uint64_t x = v.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t lo = static_cast<uint32_t>(x), hi = static_cast<uint32_t>(x >> 32);
      if (lo >= hi) return false;
      if (v.compare_exchange_weak(x, make(lo, hi - 1), std::memory_order_relaxed)) {
        t = hi - 1;
        return true;
      }
    }
  }
};

struct alignas(64) round_state {
  std::atomic<int64_t> next_pack{0};
  std::atomic<int64_t> packs_done{0};
  std::atomic<int64_t> tiles_done{0};
};

struct packed_plan {
  float* c;
  mat_view a, b;
  int64_t m, n, k;
  detail::gemm_kernel_info kern;
  int members;
  // blocking
  int64_t n_q;          // number of KC blocks
  int64_t mc;           // rows per tile (multiple of mr)
  int64_t tile_cols;    // columns per tile (multiple of nr)
  int64_t round_rows;   // rows per round (multiple of mc)
  int64_t round_cols;   // cols per round (multiple of tile_cols)
  int64_t rounds_i, rounds_j;
  // packed buffers (one round)
  float* ap;
  float* bp;
  // pack units per round: A units first (when the round packs A), then B units
  static constexpr int64_t a_unit_slivers = 20;  // 120 x 256 floats at mr = 6
  static constexpr int64_t b_unit_slivers = 8;   // 128 columns x 256
};

void pack_a_unit(const packed_plan& p, int64_t i_lo, int64_t m_pad, int64_t u) {
  const int mr = p.kern.mr;
  const int64_t m_sl = m_pad / mr;
  const int64_t per_q = ceil_div(m_sl, packed_plan::a_unit_slivers);
  const int64_t q = u / per_q;
  const int64_t r0 = (u % per_q) * packed_plan::a_unit_slivers;
  const int64_t r1 = std::min(m_sl, r0 + packed_plan::a_unit_slivers);
  const int64_t pc = q * k_kc;
  const int64_t kc = std::min(k_kc, p.k - pc);
  float* dst = p.ap + q * k_kc * m_pad;
  const int64_t i_end = std::min(p.m, i_lo + m_pad);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = i_lo + r * mr;
    const int rows = static_cast<int>(std::min<int64_t>(mr, i_end - i));
    pack_a_sliver(dst + r * kc * mr, p.a, i, rows, pc, kc, mr);
  }
}

void pack_b_unit(const packed_plan& p, int64_t j_lo, int64_t n_pad, int64_t u) {
  const int nr = p.kern.nr;
  const int64_t n_sl = n_pad / nr;
  const int64_t per_q = ceil_div(n_sl, packed_plan::b_unit_slivers);
  const int64_t q = u / per_q;
  const int64_t s0 = (u % per_q) * packed_plan::b_unit_slivers;
  const int64_t s1 = std::min(n_sl, s0 + packed_plan::b_unit_slivers);
  const int64_t pc = q * k_kc;
  const int64_t kc = std::min(k_kc, p.k - pc);
  float* dst = p.bp + q * k_kc * n_pad;
  const int64_t j_end = std::min(p.n, j_lo + n_pad);
  int64_t s = s0;
  if (p.b.cs == 1) {  // row-major B: whole slivers row by row
    const int64_t full = std::min(s1, (j_end - j_lo) / nr);
    if (full > s) {
      const float* src = p.b.p + pc * p.b.rs + j_lo + s * nr;
      if (nr == 16) {
        pack_b_rows<16>(dst + s * kc * nr, src, p.b.rs, kc, full - s);
      } else {
        pack_b_rows<8>(dst + s * kc * nr, src, p.b.rs, kc, full - s);
      }
      s = full;
    }
  }
  for (; s < s1; ++s) {
    const int64_t j = j_lo + s * nr;
    const int cols = static_cast<int>(std::min<int64_t>(nr, j_end - j));
    pack_b_sliver(dst + s * kc * nr, p.b, j, cols, pc, kc, nr);
  }
}

void run_tile(const packed_plan& p, int64_t i_lo, int64_t m_pad, int64_t j_lo, int64_t n_pad,
              int64_t t) {
  const int mr = p.kern.mr;
  const int nr = p.kern.nr;
  const int64_t i_end = std::min(p.m, i_lo + m_pad);
  const int64_t j_end = std::min(p.n, j_lo + n_pad);
  const int64_t col_tiles = ceil_div(j_end - j_lo, p.tile_cols);
  const int64_t ti = t / col_tiles;
  const int64_t tj = t % col_tiles;
  const int64_t r0 = ti * p.mc / mr;
  const int64_t r1 = std::min(m_pad / mr, r0 + p.mc / mr);
  const int64_t s0 = tj * p.tile_cols / nr;
  const int64_t s1 = std::min(n_pad / nr, s0 + p.tile_cols / nr);
  const int64_t ldc = p.n;
  for (int64_t q = 0; q < p.n_q; ++q) {
    const int64_t pc = q * k_kc;
    const int64_t kc = std::min(k_kc, p.k - pc);
    const float* aq = p.ap + q * k_kc * m_pad;
    const float* bq = p.bp + q * k_kc * n_pad;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t j = j_lo + s * nr;
      const int cols = static_cast<int>(std::min<int64_t>(nr, j_end - j));
      const float* bs = bq + s * kc * nr;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = i_lo + r * mr;
        const int rows = static_cast<int>(std::min<int64_t>(mr, i_end - i));
        p.kern.kernel(kc, aq + r * kc * mr, bs, p.c + i * ldc + j, ldc, rows, cols, q > 0);
      }
    }
  }
}

// c[m][n] = A @ B; `parallel`: pool threads join, else the calling thread does it all.
// Summation order per C element: KC blocks in order, each one micro-kernel call, so
// results do not depend on which member computed which tile.
void gemm_packed(float* c, const mat_view& a, const mat_view& b, int64_t m, int64_t n,
                 int64_t k, const detail::gemm_kernel_info& kern, bool parallel) {
  const int mr = kern.mr;
  const int nr = kern.nr;
  packed_plan p;
  p.c = c;
  p.a = a;
  p.b = b;
  p.m = m;
  p.n = n;
  p.k = k;
  p.kern = kern;
  p.members = parallel ? std::max(1, num_threads()) : 1;
  p.n_q = ceil_div(k, k_kc);
  // Rows per tile: ~120 (A block of 120 x 256 floats in L2), evened out over the blocks.
  const int64_t m_blocks = ceil_div(m, k_mc);
  p.mc = ceil_div(ceil_div(m, m_blocks), mr) * mr;
  // Columns per tile: up to 256 (the C tile stays in L2 over all of K), down to 64
  // while that leaves under ~32 tiles per member: a member's last tile is the most
  // the two can end apart.
  const int64_t n_sl_all = ceil_div(n, nr);
  int64_t tile_sl = 256 / nr;
  while (tile_sl > 4 && m_blocks * ceil_div(n_sl_all, tile_sl) < 32 * p.members) tile_sl /= 2;
  p.tile_cols = tile_sl * nr;
  // Rounds: bound the packed buffer for very large operands.
  p.round_rows = std::max<int64_t>(p.mc, k_round_floats / std::max<int64_t>(k, 1) / p.mc * p.mc);
  p.round_cols = std::max<int64_t>(p.tile_cols, k_round_floats / std::max<int64_t>(k, 1) / p.tile_cols * p.tile_cols);
  p.rounds_i = ceil_div(m, p.round_rows);
  p.rounds_j = ceil_div(n, p.round_cols);
  const int64_t m_pad_max = ceil_div(std::min(m, p.round_rows), mr) * mr;
  const int64_t n_pad_max = ceil_div(std::min(n, p.round_cols), nr) * nr;
  const int64_t k_pad = p.n_q * k_kc;
  scoped_buffer buf(static_cast<size_t>((m_pad_max + n_pad_max) * k_pad));
  p.ap = buf.l.p;
  p.bp = buf.l.p + m_pad_max * k_pad;

  const int64_t n_rounds = p.rounds_i * p.rounds_j;
  std::vector<round_state> rs(static_cast<size_t>(n_rounds));
  std::vector<tile_range> ranges(static_cast<size_t>(n_rounds * p.members));
  // Per round: ranges split the tiles evenly over the members.
  for (int64_t rd = 0; rd < n_rounds; ++rd) {
    const int64_t ii = rd / p.rounds_j, jj = rd % p.rounds_j;
    const int64_t rows = std::min(p.round_rows, m - ii * p.round_rows);
    const int64_t cols = std::min(p.round_cols, n - jj * p.round_cols);
    const int64_t tiles = ceil_div(rows, p.mc) * ceil_div(cols, p.tile_cols);
    for (int mb = 0; mb < p.members; ++mb)
      ranges[rd * p.members + mb].v.store(
          tile_range::make(static_cast<uint32_t>(tiles * mb / p.members),
                           static_cast<uint32_t>(tiles * (mb + 1) / p.members)),
          std::memory_order_relaxed);
  }

  auto member = [&](int64_t self) {
    for (int64_t rd = 0; rd < n_rounds; ++rd) {
      const int64_t ii = rd / p.rounds_j, jj = rd % p.rounds_j;
      const int64_t i_lo = ii * p.round_rows;
      const int64_t j_lo = jj * p.round_cols;
      const int64_t m_pad = ceil_div(std::min(p.round_rows, m - i_lo), mr) * mr;
      const int64_t n_pad = ceil_div(std::min(p.round_cols, n - j_lo), nr) * nr;
      const bool pack_a = jj == 0;                    // A rows change with ii only
      const bool pack_b = ii == 0 || p.rounds_j > 1;  // one column round: B packed once
      const int64_t a_units = pack_a ? p.n_q * ceil_div(m_pad / mr, packed_plan::a_unit_slivers) : 0;
      const int64_t b_units = pack_b ? p.n_q * ceil_div(n_pad / nr, packed_plan::b_unit_slivers) : 0;
      round_state& st = rs[rd];
      // The previous round's tiles are all done (waited below), so its buffers are free.
      for (;;) {
        const int64_t u = st.next_pack.fetch_add(1, std::memory_order_relaxed);
        if (u >= a_units + b_units) break;
        if (u < a_units) {
          pack_a_unit(p, i_lo, m_pad, u);
        } else {
          pack_b_unit(p, j_lo, n_pad, u - a_units);
        }
        st.packs_done.fetch_add(1, std::memory_order_release);
      }
      spin_until([&] { return st.packs_done.load(std::memory_order_acquire) == a_units + b_units; });

      const int64_t tiles = ceil_div(m_pad, p.mc) * ceil_div(std::min(p.round_cols, n - j_lo), p.tile_cols);
      tile_range* rr = ranges.data() + rd * p.members;
      int64_t t;
      while (rr[self].take_front(t)) {
        run_tile(p, i_lo, m_pad, j_lo, n_pad, t);
        st.tiles_done.fetch_add(1, std::memory_order_release);
      }
      for (int v = 1; v < p.members; ++v) {
        tile_range& victim = rr[(self + v) % p.members];
        while (victim.take_back(t)) {
          run_tile(p, i_lo, m_pad, j_lo, n_pad, t);
          st.tiles_done.fetch_add(1, std::memory_order_release);
        }
      }
      spin_until([&] { return st.tiles_done.load(std::memory_order_acquire) == tiles; });
    }
  };
  if (p.members > 1) {
    parallel_for(p.members, member);
  } else {
    member(0);
  }
}

// Small/medium M (one A block, m <= k_stream_m): every B element is used by one
// task only, so a shared packed B panel buys nothing and costs a round trip through
// L3 plus two barriers per KC step. A is packed once for all of K; each task owns a
// column chunk and, per KC step, packs just its chunk of B (L2) right before the
// micro-kernel sweeps it with every A sliver. B is read from memory exactly once;
// one parallel_for per call. Same kernel and KC blocking as gemm_one, so results
// are bit-identical to it (and across thread counts).
void gemm_stream_b(float* c, const mat_view& a, const mat_view& b, int64_t m, int64_t n,
                   int64_t k, const detail::gemm_kernel_info& kern, bool parallel) {
  const int mr = kern.mr;
  const int nr = kern.nr;
  const int64_t m_slivers = ceil_div(m, mr);
  const int64_t n_pc = ceil_div(k, k_kc);
  // A packed as [pc block][sliver][kc][mr]; block pc starts at pc * k_kc * m_slivers * mr.
  float* a_all = tls_a_full.get(static_cast<size_t>(m_slivers * mr * n_pc * k_kc));
  run_tasks(parallel && m_slivers * n_pc >= 8, m_slivers * n_pc, [&](int64_t t) {
    const int64_t ib = t / m_slivers;
    const int64_t r = t % m_slivers;
    const int64_t pc = ib * k_kc;
    const int64_t kc = std::min(k_kc, k - pc);
    const int rows = static_cast<int>(std::min<int64_t>(mr, m - r * mr));
    pack_a_sliver(a_all + pc * m_slivers * mr + r * kc * mr, a, r * mr, rows, pc, kc, mr);
  });
  // Chunk width: C chunk (m x nb) plus packed B chunk (kc x nb) within ~112 KB,
  // next to the A block (m x kc) in L2; at least ~4 tasks per thread when N allows.
  // Measured at 16x4096x11008: nb = 48..96 beats 176 by ~10-20% (the next chunk's
  // prefetch starts sooner; packed chunk is half L2-resident instead of spilling).
  const int threads = parallel ? num_threads() : 1;
  int64_t nb = (28672 / (m + k_kc)) / nr * nr;
  nb = std::clamp<int64_t>(nb, 2 * nr, 16 * nr);
  nb = std::min(nb, std::max<int64_t>(2 * nr, ceil_div(ceil_div(n, 4 * threads), nr) * nr));
  const int64_t n_tasks = ceil_div(n, nb);
  run_tasks(parallel, n_tasks, [&](int64_t t) {
    const int64_t j0 = t * nb;
    const int64_t cols = std::min(nb, n - j0);
    const int64_t n_sl = ceil_div(cols, nr);
    float* b_chunk = tls_b_panel.get(static_cast<size_t>(k_kc * nb));
    for (int64_t pc = 0; pc < k; pc += k_kc) {
      const int64_t kc = std::min(k_kc, k - pc);
      const float* a_blk = a_all + pc * m_slivers * mr;
      if (b.cs == 1 && cols == n_sl * nr) {
        // row-major B: copy each row segment once (contiguous reads of nb floats)
        if (nr == 16) {
          pack_b_rows<16>(b_chunk, b.p + pc * b.rs + j0, b.rs, kc, n_sl);
        } else {
          pack_b_rows<8>(b_chunk, b.p + pc * b.rs + j0, b.rs, kc, n_sl);
        }
      } else {
        for (int64_t s = 0; s < n_sl; ++s) {
          const int sc = static_cast<int>(std::min<int64_t>(nr, cols - s * nr));
          if (b.rs == 1 && s + 1 < n_sl) {
            const int next_cols = static_cast<int>(std::min<int64_t>(nr, cols - (s + 1) * nr));
            prefetch_b_cols(b, j0 + (s + 1) * nr, next_cols, pc, kc);
          }
          pack_b_sliver(b_chunk + s * kc * nr, b, j0 + s * nr, sc, pc, kc, nr);
        }
      }
      const int64_t next_kc = std::min(k_kc, k - pc - kc);  // 0 on the last block
      for (int64_t s = 0; s < n_sl; ++s) {
        const int sc = static_cast<int>(std::min<int64_t>(nr, cols - s * nr));
        const float* bp = b_chunk + s * kc * nr;
        // Pull the next KC block of this chunk toward L2 while computing, so the
        // memory stream overlaps the micro-kernels instead of alternating with them.
        if (next_kc > 0) prefetch_b_part(b, j0, cols, pc + kc, next_kc, s, n_sl);
        for (int64_t r = 0; r < m_slivers; ++r) {
          const int rows = static_cast<int>(std::min<int64_t>(mr, m - r * mr));
          kern.kernel(kc, a_blk + r * kc * mr, bp, c + r * mr * n + j0 + s * nr, n, rows, sc,
                      pc > 0);
        }
      }
    }
  });
}

// m <= k_small_m with AVX2: no packing, B streamed once (decode-time GEMV).
void gemm_small_m(float* out, const float* a, const float* b, const gemm_f32_shape& s,
                  bool parallel) {
  const int m = static_cast<int>(s.m);
  // The dot form wants contiguous A rows: transpose a [K][M] A once up front.
  std::vector<float> a_rows;
  int64_t stride_a = s.stride_a;
  if (s.trans_b && s.trans_a && m > 1) {
    const int64_t copies = s.stride_a == 0 ? 1 : s.batch;
    a_rows.resize(static_cast<size_t>(copies * m * s.k));
    for (int64_t bi = 0; bi < copies; ++bi)
      for (int i = 0; i < m; ++i)
        for (int64_t p = 0; p < s.k; ++p)
          a_rows[(bi * m + i) * s.k + p] = a[bi * s.stride_a + p * m + i];
    a = a_rows.data();
    stride_a = s.stride_a == 0 ? 0 : m * s.k;
  }
  const bool a_is_rows = !s.trans_a || !a_rows.empty() || m == 1;
  const int64_t a_rs = a_is_rows ? s.k : 1;
  const int64_t a_cs = a_is_rows ? 1 : m;
  // Chunks are per-column independent, so their width never changes results. The
  // axpy form wants long rows of B per task (DRAM pages, prefetch): up to 1024.
  const int64_t wide = std::clamp<int64_t>(ceil_div(ceil_div(s.n, 2 * num_threads()), 32) * 32, 256, 1024);
  const int64_t chunk = s.trans_b ? 64 : wide;
  const int64_t n_chunks = ceil_div(s.n, chunk);
  run_tasks(parallel, s.batch * n_chunks, [&](int64_t t) {
    const int64_t bi = t / n_chunks;
    const int64_t j0 = (t % n_chunks) * chunk;
    detail::gemm_small_m_avx2(out + bi * m * s.n, a + bi * stride_a, a_rs, a_cs, m,
                              b + bi * s.stride_b, s.n, s.k, s.trans_b, j0,
                              std::min(s.n, j0 + chunk));
  });
}

}  // namespace

void gemm_f32(float* out, const float* a, const float* b, const gemm_f32_shape& shape) {
  static const detail::gemm_kernel_info kern = select_kernel();
  gemm_f32_shape s = shape;
  // Broadcast B over a dense stack of non-transposed A: one tall GEMM.
  if (s.batch > 1 && s.stride_b == 0 && !s.trans_a && s.stride_a == s.m * s.k) {
    s.m *= s.batch;
    s.batch = 1;
    s.stride_a = 0;
  }
  const bool pool = num_threads() > 1;
  constexpr double k_parallel_flops = 1 << 21;  // ~20-40 us of one core
  const double flops = 2.0 * static_cast<double>(s.m) * s.n * s.k;

  static const bool small_m_path = active_simd() == simd_level::avx2_fma;
  if (small_m_path && s.m <= detail::k_small_m) {
    gemm_small_m(out, a, b, s, pool && flops * s.batch >= k_parallel_flops);
    return;
  }

  const mat_view a_base = s.trans_a ? mat_view{a, 1, s.m} : mat_view{a, s.k, 1};
  const mat_view b_base = s.trans_b ? mat_view{b, 1, s.k} : mat_view{b, s.n, 1};
  auto one = [&](int64_t bi, bool parallel) {
    const mat_view av{a_base.p + bi * s.stride_a, a_base.rs, a_base.cs};
    const mat_view bv{b_base.p + bi * s.stride_b, b_base.rs, b_base.cs};
    if (s.m <= k_stream_m) {
      gemm_stream_b(out + bi * s.m * s.n, av, bv, s.m, s.n, s.k, kern, parallel);
    } else {
      gemm_packed(out + bi * s.m * s.n, av, bv, s.m, s.n, s.k, kern, parallel);
    }
  };
  if (s.batch > 1 && pool && flops < 4 * k_parallel_flops) {
    parallel_for(s.batch, [&](int64_t bi) { one(bi, false); });
    return;
  }
  const bool parallel = pool && flops >= k_parallel_flops;
  for (int64_t bi = 0; bi < s.batch; ++bi) one(bi, parallel);
}

}  // namespace tessera
