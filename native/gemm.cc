// gemm: batched f32 GEMM, out[b] = op(A[b]) @ op(B[b]), row-major, overwrite.
// gemm_mixed: the same with float16 / bfloat16 operands (raw bits), widened to float32 while they
// are packed (pack_half, exact) and then through gemm_packed; f32 accumulation and output. Except
// decode against bfloat16 / float16 (F16C) Linear weights (M <= 4, float32 x, B [N][K]): dot products with B widened
// in registers, no packing (1x4096x4096: 0.94 ms vs 2.65 ms for float32 weights, 2 threads).
//
// Paths, by M (after folding a broadcast-B batch into M):
//   M > 192   gemm_packed (gemm_packed.cc), Goto/BLIS style: A and B packed for all
//             of K (6-row / 16-col slivers per KC=384 block), on demand by whichever
//             thread first needs a piece; C tiles of ~120 rows x 64-256 cols, each
//             swept KC block by KC block: per 16-col B sliver (L1) x each 6-row A
//             sliver of the tile's A block (L2), one micro-kernel call. One
//             parallel_for per call, no sleeping waits inside it (why: gemm_packed.cc).
//   4 < M <= 192 (LLM linear at prefill / small batch): gemm_stream_b, one A block
//             packed once for all of K, tasks over column chunks that pack their own B
//             chunk (L2) per KC step, software-prefetching the next step's B rows
//             (every row of B is another DRAM page, which hardware prefetchers do not
//             cross). 2 threads: 16x4096x11008 ~40 ms, 128x4096x4096 ~65 ms.
//   M <= 4 on AVX2 (decode-time GEMV) skips packing (gemm_avx2.cc): dot products
//             along K when B is [N][K] (tasks: chunks of 64 rows of B), row-axpy over K
//             when B is [K][N] (tasks: fixed K chunks of 512 rows, B read front to back,
//             partials added in chunk order; column chunks for a batch or K <= 512); B is
//             streamed from memory once.
// The first KC block stores into C, later ones add, so C is never read before it is
// written (NaN-poisoned outputs are fine). Within a path an element's summation order
// (the micro-kernel over the KC blocks in order) depends on nothing but K: results are
// bit-identical across thread counts, task splits and tile edges. gemm_packed (KC 384)
// and gemm_stream_b (KC 256) block K differently, so the two paths agree to rounding,
// not to the bit (as the M <= 4 path never did).
// transA/transB and batch strides are absorbed by the packing routines (below), which
// read either layout; padding rows/cols of a sliver are zero-filled.
//
// Layouts: A is [M][K] ([K][M] if transA), B is [K][N] ([N][K] if transB), out
// [batch][M][N]; stride 0 broadcasts one matrix to every batch. Small problems skip
// the pool; many small batches run one matrix per task.
//
// Micro-kernels: 6x16 AVX2+FMA (gemm_avx2.cc: 12 ymm accumulators, 2 B loads + 6
// broadcasts per 12 FMAs), 4x8 portable C++ (below, which GCC vectorizes with
// baseline SSE2). Blocking for Zen3-class cores (32 KB L1d, 512 KB L2): B sliver
// 24 KB (L1; 16 KB on gemm_stream_b's KC 256), A block 120 x 384 = 180 KB (L2).
// Tolerance: f32 accumulate, ||out-ref||/||ref|| ~1e-6 for K <= 4096 vs float64.
// Roofline (2-core Zen3 EPYC VM shared with other jobs; 2.445 GHz nominal, so 157
// GFLOP/s nominal peak = 2 x 2.445 GHz x 32 flop/cycle; the cores turbo to ~3.1 GHz,
// where a pure-FMA loop gives ~100 GFLOP/s per core). The 6x16 kernel alone, A from L2
// and B in L1: ~95-98 GFLOP/s on one core, ~92-97 each with both busy (4x24 and other
// unrolls measured within noise of it).
// gemm_f32 square, 2 threads, calls back to back on a reused output (C++ loop): 1024
// best ~175-180, median ~150-160 GFLOP/s; 2048 best ~165, median ~150; per core ~77-80
// GFLOP per CPU-second, of which the kernel takes ~90% of the time (at ~92% of its
// L2/L1 rate: packed pieces come from L3 or the other core), packing ~6% (8 MB read
// and 8 MB written at 1024, memory bound: its prefetch distance, hint and loop order
// all measured within noise), waits and scheduling the rest.
// Through the JS API in the CPU benchmark (bursts of calls, fresh 4-16 MB output each
// call, ~0.5 ms to allocate at 1024): 1024 ~120-140, 2048 ~135-150 GFLOP/s, within
// 0.97-1.02x of numpy and 1.2-1.5x ORT in the same runs; this VM's noise between runs
// is about as large.
// Earlier measurements, not redone: generic path, 2 threads ~30-50 GFLOP/s; M = 1
// (4096 x 4096) ~1.4 ms, ~45 GB/s of B, memory bound.
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu_features.h"
#include "thread_pool.h"

namespace tessera {

namespace {

constexpr int64_t k_kc = detail::k_gemm_kc;
constexpr int k_max_mr = 8;
constexpr int64_t k_stream_m = 192;  // m <= this: gemm_stream_b (A block fits L2)

using mat_view = detail::gemm_view;

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
thread_local aligned_floats tls_split_k;  // gemm_small_m_split_k: chunk partials (caller)
constexpr int64_t k_split_k_rows = 512;  // K chunk of the split-K GEMV (fixed: results never depend on threads)

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

// A float16 / bfloat16 value as float32 (exact: both are subsets of float32).
inline float widen(uint16_t h, gemm_src src) {
  uint32_t bits;
  if (src == gemm_src::bf16) {
    bits = static_cast<uint32_t>(h) << 16;
  } else {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 31) {
      bits = sign | 0x7F800000u | (m << 13);  // inf, NaN (payload kept)
    } else if (e != 0) {
      bits = sign | ((e + 112) << 23) | (m << 13);
    } else {  // zero or subnormal: m * 2^-24, exact in float32
      const float f = static_cast<float>(m) * 5.9604644775390625e-8f;
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A 16-bit view's [rows][kc] block of (i, p) = (i0 + ii, p0 + p) into dst[p * ld + ii], zero-padded
// to width: the widening pack of both operands (a B sliver is the same with (i, p) = (j, p)).
void pack_half(float* dst, const mat_view& v, int64_t i0, int rows, int64_t p0, int64_t kc,
               int width, bool b_operand) {
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * width;
    for (int ii = 0; ii < rows; ++ii) {
      const int64_t at = b_operand ? (p0 + p) * v.rs + (i0 + ii) * v.cs : (i0 + ii) * v.rs + (p0 + p) * v.cs;
      d[ii] = widen(v.h[at], v.src);
    }
    for (int ii = rows; ii < width; ++ii) d[ii] = 0.0f;
  }
}

}  // namespace

namespace detail {

// dst[p * mr + ii] = A(i0 + ii, p0 + p), zero for ii >= rows.
void gemm_pack_a(float* dst, const gemm_view& a, int64_t i0, int rows, int64_t p0, int64_t kc,
                 int mr) {
  if (a.src != gemm_src::f32) {
    pack_half(dst, a, i0, rows, p0, kc, mr, false);
    return;
  }
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
      gemm_pack_a6_avx2(dst, a.p + i0 * a.rs + p0, a.rs, kc))
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
void gemm_pack_b(float* dst, const gemm_view& b, int64_t j0, int cols, int64_t p0, int64_t kc,
                 int nr) {
  if (b.src != gemm_src::f32) {
    pack_half(dst, b, j0, cols, p0, kc, nr, true);
    return;
  }
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

void gemm_pack_b_rows(float* dst, const float* src, int64_t ld, int64_t kc, int64_t n_sl, int nr) {
  if (nr == 16) {
    pack_b_rows<16>(dst, src, ld, kc, n_sl);
  } else {
    pack_b_rows<8>(dst, src, ld, kc, n_sl);
  }
}

}  // namespace detail

namespace {

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

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Small/medium M (one A block, m <= k_stream_m): every B element is used by one
// task only, so a shared packed B panel buys nothing and costs a round trip through
// L3 plus two barriers per KC step. A is packed once for all of K; each task owns a
// column chunk and, per KC step, packs just its chunk of B (L2) right before the
// micro-kernel sweeps it with every A sliver. B is read from memory exactly once;
// one parallel_for per call. Results are bit-identical across thread counts (K blocked
// by k_gemm_kc = 256 whatever the split).
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
    detail::gemm_pack_a(a_all + pc * m_slivers * mr + r * kc * mr, a, r * mr, rows, pc, kc, mr);
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
        detail::gemm_pack_b_rows(b_chunk, b.p + pc * b.rs + j0, b.rs, kc, n_sl, nr);
      } else {
        for (int64_t s = 0; s < n_sl; ++s) {
          const int sc = static_cast<int>(std::min<int64_t>(nr, cols - s * nr));
          if (b.rs == 1 && s + 1 < n_sl) {
            const int next_cols = static_cast<int>(std::min<int64_t>(nr, cols - (s + 1) * nr));
            prefetch_b_cols(b, j0 + (s + 1) * nr, next_cols, pc, kc);
          }
          detail::gemm_pack_b(b_chunk + s * kc * nr, b, j0 + s * nr, sc, pc, kc, nr);
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

// B [K][N] with m <= k_small_m and K > k_split_k_rows (x @ W at decode time): K is cut into fixed
// chunks of k_split_k_rows rows; a task computes one chunk's partial product for a range of
// columns, reading its rows of B front to back (8 rows at a time, so 8 sequential streams that
// the hardware prefetchers follow, each row one run of DRAM pages). Chunk 0 writes into out, the
// others into scratch, added afterwards in chunk order, so every element is summed in an order
// set by K alone: the same bits for any thread count. Column parts only when there are too few
// chunks to keep the pool busy (a column split turns each row into shorter runs).
// 2 threads, both builds loaded in one process, against the column-chunk form it replaces (B rows
// 1024 columns wide per task): 1x4096x4096 2.45 vs 3.30 ms, 1x4096x11008 7.1 vs 10.2 ms,
// 4x4096x4096 4.3 vs 5.7 ms (medians).
void gemm_small_m_split_k(float* out, const float* a, int64_t a_rs, int64_t a_cs, int m,
                          const float* b, int64_t n, int64_t k, bool parallel) {
  const int64_t chunks = ceil_div(k, k_split_k_rows);
  const int64_t want = parallel ? 4 * num_threads() : 1;
  const int64_t col_parts = std::clamp<int64_t>(ceil_div(want, chunks), 1, std::max<int64_t>(1, n / 256));
  const int64_t width = ceil_div(ceil_div(n, col_parts), 32) * 32;
  const int64_t mn = static_cast<int64_t>(m) * n;
  float* part = tls_split_k.get(static_cast<size_t>((chunks - 1) * mn));
  run_tasks(parallel, chunks * col_parts, [&](int64_t t) {
    const int64_t c = t / col_parts;
    const int64_t j0 = (t % col_parts) * width;
    const int64_t j1 = std::min(n, j0 + width);
    if (j0 >= j1) return;
    const int64_t p0 = c * k_split_k_rows;
    const int64_t kc = std::min(k, p0 + k_split_k_rows) - p0;
    float* dst = c == 0 ? out : part + (c - 1) * mn;
    detail::gemm_small_m_avx2(dst, a + p0 * a_cs, a_rs, a_cs, m, b + p0 * n, n, kc, false, j0, j1);
  });
  // out += partials, chunk by chunk in order, by column ranges of ~16 KB
  const int64_t rw = 4096;
  const int64_t n_r = ceil_div(mn, rw);
  run_tasks(parallel && mn >= 8 * rw, n_r, [&](int64_t t) {
    const int64_t i0 = t * rw;
    const int64_t i1 = std::min(mn, i0 + rw);
    for (int64_t c = 1; c < chunks; ++c) {
      const float* src = part + (c - 1) * mn;
      for (int64_t i = i0; i < i1; ++i) out[i] += src[i];
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
  if (!s.trans_b && s.batch == 1 && s.k > k_split_k_rows) {
    gemm_small_m_split_k(out, a, a_rs, a_cs, m, b, s.n, s.k, parallel);
    return;
  }
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

constexpr double k_parallel_flops = 1 << 21;  // ~20-40 us of one core: below, the calling thread alone

// one(bi, parallel) for every matrix of the batch: a batch of small products goes to the pool one
// matrix per task; otherwise the matrices run in order, each with the pool inside when big enough.
template <class F>
void for_each_batch(const gemm_f32_shape& s, F&& one) {
  const bool pool = num_threads() > 1;
  const double flops = 2.0 * static_cast<double>(s.m) * s.n * s.k;
  if (s.batch > 1 && pool && flops < 4 * k_parallel_flops) {
    parallel_for(s.batch, [&](int64_t bi) { one(bi, false); });
    return;
  }
  const bool parallel = pool && flops >= k_parallel_flops;
  for (int64_t bi = 0; bi < s.batch; ++bi) one(bi, parallel);
}

}  // namespace

void gemm_mixed(float* out, const void* a, gemm_src a_src, const void* b, gemm_src b_src,
                const gemm_f32_shape& shape) {
  if (a_src == gemm_src::f32 && b_src == gemm_src::f32) {
    gemm_f32(out, static_cast<const float*>(a), static_cast<const float*>(b), shape);
    return;
  }
  static const detail::gemm_kernel_info kern = select_kernel();
  const gemm_f32_shape& s = shape;
  const bool pool = num_threads() > 1;
  const double flops = 2.0 * static_cast<double>(s.m) * s.n * s.k;
  // Decode GEMV against float16/bfloat16 Linear weights: no packing, B widened in registers (half the bytes).
  static const bool avx2 = active_simd() == simd_level::avx2_fma;
  const bool half_b = b_src == gemm_src::bf16 || (b_src == gemm_src::f16 && cpu_has_f16c());
  if (avx2 && s.m <= detail::k_small_m && a_src == gemm_src::f32 && half_b && s.trans_b && !s.trans_a) {
    const auto gemv = b_src == gemm_src::bf16 ? &detail::gemm_small_m_bf16_avx2 : &detail::gemm_small_m_f16_avx2;
    const float* af = static_cast<const float*>(a);
    const uint16_t* bh = static_cast<const uint16_t*>(b);
    constexpr int64_t chunk = 64;
    const int64_t n_chunks = ceil_div(s.n, chunk);
    run_tasks(pool && flops * s.batch >= k_parallel_flops, s.batch * n_chunks, [&](int64_t t) {
      const int64_t bi = t / n_chunks;
      const int64_t j0 = (t % n_chunks) * chunk;
      gemv(out + bi * s.m * s.n, af + bi * s.stride_a, s.k, static_cast<int>(s.m), bh + bi * s.stride_b,
           s.n, s.k, j0, std::min(s.n, j0 + chunk));
    });
    return;
  }
  auto view = [](const void* p, gemm_src src, int64_t off, int64_t rs, int64_t cs) {
    mat_view v{nullptr, rs, cs};
    if (src == gemm_src::f32) {
      v.p = static_cast<const float*>(p) + off;
    } else {
      v.h = static_cast<const uint16_t*>(p) + off;
      v.src = src;
    }
    return v;
  };
  for_each_batch(s, [&](int64_t bi, bool parallel) {
    const mat_view av = s.trans_a ? view(a, a_src, bi * s.stride_a, 1, s.m) : view(a, a_src, bi * s.stride_a, s.k, 1);
    const mat_view bv = s.trans_b ? view(b, b_src, bi * s.stride_b, 1, s.k) : view(b, b_src, bi * s.stride_b, s.n, 1);
    detail::gemm_packed(out + bi * s.m * s.n, av, bv, s.m, s.n, s.k, kern, parallel);
  });
}

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
  const double flops = 2.0 * static_cast<double>(s.m) * s.n * s.k;

  static const bool small_m_path = active_simd() == simd_level::avx2_fma;
  if (small_m_path && s.m <= detail::k_small_m) {
    gemm_small_m(out, a, b, s, pool && flops * s.batch >= k_parallel_flops);
    return;
  }

  const mat_view a_base = s.trans_a ? mat_view{a, 1, s.m} : mat_view{a, s.k, 1};
  const mat_view b_base = s.trans_b ? mat_view{b, 1, s.k} : mat_view{b, s.n, 1};
  for_each_batch(s, [&](int64_t bi, bool parallel) {
    const mat_view av{a_base.p + bi * s.stride_a, a_base.rs, a_base.cs};
    const mat_view bv{b_base.p + bi * s.stride_b, b_base.rs, b_base.cs};
    if (s.m <= k_stream_m) {
      gemm_stream_b(out + bi * s.m * s.n, av, bv, s.m, s.n, s.k, kern, parallel);
    } else {
      detail::gemm_packed(out + bi * s.m * s.n, av, bv, s.m, s.n, s.k, kern, parallel);
    }
  });
}

}  // namespace tessera
