// spmm_avx2: AVX2+FMA row kernels of spmm (driver and layouts in spmm.cc).
//
// Register tile: one output row x W vectors (W = 1..8, up to 64 columns), the
// last vector masked when the tile width is not a multiple of 8. Per stored
// entry: 1 broadcast of the value, W loads of the B row slice, W FMAs into the
// W accumulators, so at W = 8 the two FMA pipes and the two load ports are both
// near busy (9 loads per 8 FMAs). Each output accumulates in increasing k with
// one FMA per stored entry, the same order for any tiling or thread count.
// CSR: indices are read once (load_once) and range-checked before use; the B row
// of the entry a few places ahead is prefetched (its column is known, the
// hardware prefetcher cannot guess a gather).
// 2:4: the two kept positions of a group come from one meta nibble; two groups
// (one meta byte) per step; only the final, padded group takes the k < K test.
// Values and meta of the row k_rows_ahead further on are prefetched.
// Compiled with the target attribute only: the file builds on baseline x86-64
// and is called only after cpu_features reports avx2+fma.
#include "spmm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace tessera {
namespace detail {

namespace {

alignas(32) const int32_t k_mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

__attribute__((target("avx2,fma"), always_inline)) inline __m256i tail_mask(int n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k_mask_src + 8 - n));
}

template <int W, bool MASKED>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 load_vec(const float* p, int w,
                                                                          __m256i mask) {
  return (MASKED && w == W - 1) ? _mm256_maskload_ps(p + 8 * w, mask) : _mm256_loadu_ps(p + 8 * w);
}

// acc[0..W) += v * B row slice br.
template <int W, bool MASKED>
__attribute__((target("avx2,fma"), always_inline)) inline void axpy(__m256* acc, __m256 v,
                                                                    const float* br, __m256i mask) {
  for (int w = 0; w < W; ++w) acc[w] = _mm256_fmadd_ps(v, load_vec<W, MASKED>(br, w, mask), acc[w]);
}

template <int W, bool MASKED>
__attribute__((target("avx2,fma"), always_inline)) inline void store_row(float* o, const __m256* acc,
                                                                         __m256i mask) {
  for (int w = 0; w < W; ++w) {
    if (MASKED && w == W - 1) {
      _mm256_maskstore_ps(o + 8 * w, mask, acc[w]);
    } else {
      _mm256_storeu_ps(o + 8 * w, acc[w]);
    }
  }
}

constexpr int64_t k_prefetch_ahead = 8;  // CSR entries
constexpr int64_t k_rows_ahead = 2;      // 2:4 rows

template <int W, bool MASKED>
__attribute__((target("avx2,fma"))) void csr_tile(float* out, const spmm_csr_f32_args& a, int64_t m0,
                                                  int64_t m1, int64_t j0, __m256i mask) {
  const float* b = a.b + j0;
  const int64_t n = a.n;
  const int64_t k = a.k;
  const uintptr_t b_addr = reinterpret_cast<uintptr_t>(b);
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t p0 = load_once(a.row_ptr + m);
    const int64_t p1 = load_once(a.row_ptr + m + 1);
    if (p0 < 0 || p1 < p0 || p1 > a.nnz) throw_bad_row(a, m, p0, p1);
    __m256 acc[W];
    for (int w = 0; w < W; ++w) acc[w] = _mm256_setzero_ps();
    int64_t prev = -1;
    for (int64_t p = p0; p < p1; ++p) {
      if (p + k_prefetch_ahead < p1) {
        // A prefetch never faults; the address is formed as an integer so that a
        // bad index (caught when its entry is reached) is never pointer arithmetic.
        const uintptr_t ahead =
            b_addr + static_cast<uintptr_t>(a.col_idx[p + k_prefetch_ahead]) * n * sizeof(float);
        for (int w = 0; w < W; w += 2)
          _mm_prefetch(reinterpret_cast<const char*>(ahead + 32 * w), _MM_HINT_T0);
      }
      const int64_t c = load_once(a.col_idx + p);
      if (__builtin_expect(c <= prev || c >= k, 0)) throw_bad_column(a, m, p, c);
      prev = c;
      axpy<W, MASKED>(acc, _mm256_broadcast_ss(a.values + p), b + c * n, mask);
    }
    store_row<W, MASKED>(out + m * n + j0, acc, mask);
  }
}

template <int W, bool MASKED>
__attribute__((target("avx2,fma"))) void tile_24(float* out, const spmm_24_f32_args& a,
                                                 const float* bb, int64_t ldb, int64_t m0,
                                                 int64_t m1, int64_t g0, int64_t g1, int64_t j0,
                                                 bool first, __m256i mask) {
  const int64_t groups = (a.k + 3) / 4;
  const int64_t meta_stride = (groups + 1) / 2;
  const int64_t n = a.n;
  const int64_t k_base = 4 * g0;  // B row k of the block at bb + (k - k_base) * ldb
  const int64_t full_end = g1 < a.k / 4 ? g1 : a.k / 4;  // groups wholly inside K
  for (int64_t m = m0; m < m1; ++m) {
    const float* vr = a.values + m * 2 * groups;
    const uint8_t* mr = a.meta + m * meta_stride;
    float* o = out + m * n + j0;
    {  // values and meta of the row k_rows_ahead further on (wrapping to the next K block)
      int64_t pm = m + k_rows_ahead;
      int64_t pg = g0;
      if (pm >= m1) {
        pm -= m1 - m0;
        pg = g1;
      }
      if (pg < groups) {
        const float* pv = a.values + pm * 2 * groups;
        for (int64_t g = pg; g < pg + (g1 - g0) && g < groups; g += 8)
          _mm_prefetch(reinterpret_cast<const char*>(pv + 2 * g), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(a.meta + pm * meta_stride + (pg >> 1)), _MM_HINT_T0);
      }
    }
    __m256 acc[W];
    for (int w = 0; w < W; ++w) acc[w] = first ? _mm256_setzero_ps() : load_vec<W, MASKED>(o, w, mask);
    int64_t g = g0;
    for (; g + 2 <= full_end; g += 2) {  // one meta byte: two groups, four entries
      const int64_t byte = mr[g >> 1];
      const float* bg = bb + (4 * g - k_base) * ldb;
      axpy<W, MASKED>(acc, _mm256_broadcast_ss(vr + 2 * g), bg + (byte & 3) * ldb, mask);
      axpy<W, MASKED>(acc, _mm256_broadcast_ss(vr + 2 * g + 1), bg + ((byte >> 2) & 3) * ldb, mask);
      bg += 4 * ldb;
      axpy<W, MASKED>(acc, _mm256_broadcast_ss(vr + 2 * g + 2), bg + ((byte >> 4) & 3) * ldb, mask);
      axpy<W, MASKED>(acc, _mm256_broadcast_ss(vr + 2 * g + 3), bg + ((byte >> 6) & 3) * ldb, mask);
    }
    for (; g < g1; ++g) {  // odd leftover and the padded last group
      const int nib = (mr[g >> 1] >> ((g & 1) * 4)) & 15;
      const int64_t k0 = 4 * g + (nib & 3);
      const int64_t k1 = 4 * g + (nib >> 2);
      if (k0 < a.k)
        axpy<W, MASKED>(acc, _mm256_broadcast_ss(vr + 2 * g), bb + (k0 - k_base) * ldb, mask);
      if (k1 < a.k)
        axpy<W, MASKED>(acc, _mm256_broadcast_ss(vr + 2 * g + 1), bb + (k1 - k_base) * ldb, mask);
    }
    store_row<W, MASKED>(o, acc, mask);
  }
}

using csr_fn = void (*)(float*, const spmm_csr_f32_args&, int64_t, int64_t, int64_t, __m256i);
using fn_24 = void (*)(float*, const spmm_24_f32_args&, const float*, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, bool, __m256i);

// [W - 1][masked]
const csr_fn k_csr_tiles[8][2] = {
    {csr_tile<1, false>, csr_tile<1, true>}, {csr_tile<2, false>, csr_tile<2, true>},
    {csr_tile<3, false>, csr_tile<3, true>}, {csr_tile<4, false>, csr_tile<4, true>},
    {csr_tile<5, false>, csr_tile<5, true>}, {csr_tile<6, false>, csr_tile<6, true>},
    {csr_tile<7, false>, csr_tile<7, true>}, {csr_tile<8, false>, csr_tile<8, true>}};
const fn_24 k_tiles_24[8][2] = {
    {tile_24<1, false>, tile_24<1, true>}, {tile_24<2, false>, tile_24<2, true>},
    {tile_24<3, false>, tile_24<3, true>}, {tile_24<4, false>, tile_24<4, true>},
    {tile_24<5, false>, tile_24<5, true>}, {tile_24<6, false>, tile_24<6, true>},
    {tile_24<7, false>, tile_24<7, true>}, {tile_24<8, false>, tile_24<8, true>}};

__attribute__((target("avx2,fma"))) void csr_rows_avx2(float* out, const spmm_csr_f32_args& a,
                                                       int64_t m0, int64_t m1, int64_t j0, int width) {
  const int vecs = (width + 7) / 8;
  const int rem = width - 8 * (vecs - 1);
  k_csr_tiles[vecs - 1][rem != 8](out, a, m0, m1, j0, tail_mask(rem));
}

__attribute__((target("avx2,fma"))) void rows_24_avx2(float* out, const spmm_24_f32_args& a,
                                                      const float* bb, int64_t ldb, int64_t m0,
                                                      int64_t m1, int64_t g0, int64_t g1,
                                                      int64_t j0, int width, bool first) {
  const int vecs = (width + 7) / 8;
  const int rem = width - 8 * (vecs - 1);
  k_tiles_24[vecs - 1][rem != 8](out, a, bb, ldb, m0, m1, g0, g1, j0, first, tail_mask(rem));
}

}  // namespace

spmm_kernels spmm_kernels_avx2() { return {&csr_rows_avx2, &rows_24_avx2}; }

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected (cpu_features reports generic)

namespace tessera {
namespace detail {
spmm_kernels spmm_kernels_avx2() { return {nullptr, nullptr}; }
}  // namespace detail
}  // namespace tessera

#endif
