// attention_avx2: AVX2+FMA inner kernels of attention_f32 (driver in attention.cc).
//
// scores: S = scale * Q K^T as dot products along D, register-blocked 3 query
//   rows x 4 keys = 12 ymm accumulators + 3 q vectors + 1 k vector (16 ymm);
//   per 8-wide D step 7 loads feed 12 FMAs. Rows of Q and K are read in place
//   (no packing, so decode with Sq = 1 streams K once). The 4 sums of a row are
//   reduced together with two rounds of hadd. D tails use masked loads.
// softmax: row max, then p = exp(s - m) with a Cephes-style degree-6 polynomial
//   exp (|rel err| < 2 ulp on [-87.3, 0]; inputs below -87.3, masked -inf
//   included, give exactly 0), row sums kept in f32.
// pv: O = alpha * O + P V as a 6-row x 16-col register tile (12 accumulators,
//   P broadcast from the score tile; the keys x 16 V slice copied contiguous
//   when >= 12 rows share it, else read in place), Dv tails masked.
// Everything is compiled with the target attribute and only called after
// cpu_features reports avx2+fma.
#include "attention.h"

#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <limits>

#define TESSERA_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline

namespace tessera {
namespace detail {

namespace {

alignas(32) const int32_t k_mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

// Lanes [0, n) set, n in [0, 8].
TESSERA_AVX2 __m256i tail_mask(int64_t n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k_mask_src + 8 - n));
}

TESSERA_AVX2 float hsum(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TESSERA_AVX2 float hmax(__m256 x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// [sum a, sum b, sum c, sum d]
TESSERA_AVX2 __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b);
  const __m256 cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

TESSERA_AVX2 __m256 exp256(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.37f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.33f));
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - fx * ln2, ln2 split in two so fx * hi is exact
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(underflow, y);
}

// ---- scores -----------------------------------------------------------------

template <int R, int C>
TESSERA_AVX2 void dot_tile(float* s, int64_t ld_s, const float* q, const float* k, int64_t d,
                           float scale) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t d_full = d & ~int64_t{7};
  for (int64_t x = 0; x < d_full; x += 8) {
    __m256 qv[R];
    for (int r = 0; r < R; ++r) qv[r] = _mm256_loadu_ps(q + r * d + x);
    for (int c = 0; c < C; ++c) {
      const __m256 kv = _mm256_loadu_ps(k + c * d + x);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(qv[r], kv, acc[r][c]);
    }
  }
  if (d_full < d) {
    const __m256i mask = tail_mask(d - d_full);
    __m256 qv[R];
    for (int r = 0; r < R; ++r) qv[r] = _mm256_maskload_ps(q + r * d + d_full, mask);
    for (int c = 0; c < C; ++c) {
      const __m256 kv = _mm256_maskload_ps(k + c * d + d_full, mask);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(qv[r], kv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if constexpr (C == 4) {
      const __m128 sum = hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      _mm_storeu_ps(s + r * ld_s, _mm_mul_ps(sum, _mm_set1_ps(scale)));
    } else {
      for (int c = 0; c < C; ++c) s[r * ld_s + c] = scale * hsum(acc[r][c]);
    }
  }
}

template <int R>
TESSERA_AVX2 void scores_rows(float* s, int64_t ld_s, const float* q, const float* k, int keys,
                              int64_t d, float scale) {
  int j = 0;
  for (; j + 4 <= keys; j += 4) dot_tile<R, 4>(s + j, ld_s, q, k + j * d, d, scale);
  switch (keys - j) {
    case 1: dot_tile<R, 1>(s + j, ld_s, q, k + j * d, d, scale); break;
    case 2: dot_tile<R, 2>(s + j, ld_s, q, k + j * d, d, scale); break;
    case 3: dot_tile<R, 3>(s + j, ld_s, q, k + j * d, d, scale); break;
    default: break;
  }
}

__attribute__((target("avx2,fma"))) void scores_avx2(float* s, int64_t ld_s, const float* q,
                                                      int rows, const float* k, int keys,
                                                      int64_t d, float scale) {
  int i = 0;
  for (; i + 3 <= rows; i += 3) scores_rows<3>(s + i * ld_s, ld_s, q + i * d, k, keys, d, scale);
  if (rows - i == 2) scores_rows<2>(s + i * ld_s, ld_s, q + i * d, k, keys, d, scale);
  if (rows - i == 1) scores_rows<1>(s + i * ld_s, ld_s, q + i * d, k, keys, d, scale);
}

// ---- softmax ----------------------------------------------------------------

__attribute__((target("avx2,fma"))) void softmax_avx2(float* s, int64_t ld_s, int rows,
                                                       int keys, float* m, float* l,
                                                       float* alpha) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int width = (keys + 7) & ~7;  // <= ld_s; padding lanes hold -inf -> p = 0
  for (int i = 0; i < rows; ++i) {
    float* row = s + i * ld_s;
    for (int j = keys; j < width; ++j) row[j] = neg_inf;
    __m256 vmax = _mm256_set1_ps(neg_inf);
    __m256 vnan = _mm256_setzero_ps();
    for (int j = 0; j < width; j += 8) {
      const __m256 x = _mm256_loadu_ps(row + j);
      vmax = _mm256_max_ps(vmax, x);  // maxps drops NaN operands: track them separately
      vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    if (std::isnan(m[i]) || _mm256_movemask_ps(vnan) != 0) {  // NaN poisons the row, as in PyTorch
      mark_row_nan(row, width, m[i], l[i], alpha[i]);
      continue;
    }
    const float m_new = std::max(m[i], hmax(vmax));
    if (m_new == neg_inf) {
      alpha[i] = 1.0f;
      for (int j = 0; j < width; j += 8) _mm256_storeu_ps(row + j, _mm256_setzero_ps());
      continue;
    }
    alpha[i] = _mm256_cvtss_f32(exp256(_mm256_set1_ps(m[i] - m_new)));  // m[i] = -inf -> 0
    const __m256 vm = _mm256_set1_ps(m_new);
    __m256 vsum = _mm256_setzero_ps();
    for (int j = 0; j < width; j += 8) {
      const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
      _mm256_storeu_ps(row + j, p);
      vsum = _mm256_add_ps(vsum, p);
    }
    l[i] = l[i] * alpha[i] + hsum(vsum);
    m[i] = m_new;
  }
}

// ---- P.V ----------------------------------------------------------------------

// R rows x W vectors of o starting at column c; MASKED: the last vector is a tail.
template <int R, int W, bool MASKED>
TESSERA_AVX2 void pv_tile(float* o, int64_t dv, const float* p, int64_t ld_p, const float* v,
                          int64_t ldv, int keys, const float* alpha, __m256i mask) {
  __m256 acc[R][W];
  for (int r = 0; r < R; ++r) {
    const __m256 a = _mm256_set1_ps(alpha[r]);
    for (int w = 0; w < W; ++w) {
      const __m256 x = (MASKED && w == W - 1) ? _mm256_maskload_ps(o + r * dv + 8 * w, mask)
                                              : _mm256_loadu_ps(o + r * dv + 8 * w);
      acc[r][w] = _mm256_mul_ps(x, a);
    }
  }
  for (int j = 0; j < keys; ++j) {
    __m256 vv[W];
    for (int w = 0; w < W; ++w)
      vv[w] = (MASKED && w == W - 1) ? _mm256_maskload_ps(v + j * ldv + 8 * w, mask)
                                     : _mm256_loadu_ps(v + j * ldv + 8 * w);
    for (int r = 0; r < R; ++r) {
      const __m256 pr = _mm256_broadcast_ss(p + r * ld_p + j);
      for (int w = 0; w < W; ++w) acc[r][w] = _mm256_fmadd_ps(pr, vv[w], acc[r][w]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) {
      if (MASKED && w == W - 1) {
        _mm256_maskstore_ps(o + r * dv + 8 * w, mask, acc[r][w]);
      } else {
        _mm256_storeu_ps(o + r * dv + 8 * w, acc[r][w]);
      }
    }
}

// Rows [0, rows) of one column range of o (W vectors, last one masked if MASKED).
template <int W, bool MASKED>
TESSERA_AVX2 void pv_cols(float* o, int64_t dv, const float* p, int64_t ld_p, int rows,
                          const float* v, int64_t ldv, int keys, const float* alpha,
                          __m256i mask) {
  int i = 0;
  for (; i + 6 <= rows; i += 6)
    pv_tile<6, W, MASKED>(o + i * dv, dv, p + i * ld_p, ld_p, v, ldv, keys, alpha + i, mask);
  float* oi = o + i * dv;
  const float* pi = p + i * ld_p;
  switch (rows - i) {
    case 1: pv_tile<1, W, MASKED>(oi, dv, pi, ld_p, v, ldv, keys, alpha + i, mask); break;
    case 2: pv_tile<2, W, MASKED>(oi, dv, pi, ld_p, v, ldv, keys, alpha + i, mask); break;
    case 3: pv_tile<3, W, MASKED>(oi, dv, pi, ld_p, v, ldv, keys, alpha + i, mask); break;
    case 4: pv_tile<4, W, MASKED>(oi, dv, pi, ld_p, v, ldv, keys, alpha + i, mask); break;
    case 5: pv_tile<5, W, MASKED>(oi, dv, pi, ld_p, v, ldv, keys, alpha + i, mask); break;
    default: break;
  }
}

// Column chunks outer, row groups inner: the keys x 16 slice of V (<= 4 KB)
// stays in L1 while every row of the block uses it. With many rows the slice is
// first copied contiguous: in place its rows are dv floats apart, which at
// dv = 128 folds the 64 lines onto 8 L1 sets (conflict misses); ~10% overall
// at S1024 D128 (1 thread).
__attribute__((target("avx2,fma"))) void pv_avx2(float* o, int64_t dv, const float* p,
                                                  int64_t ld_p, int rows, const float* v,
                                                  int keys, const float* alpha) {
  const __m256i none = _mm256_setzero_si256();
  alignas(32) float slice[64 * 16];
  const bool copy = rows >= 12 && keys <= 64;
  int64_t c = 0;
  for (; c + 16 <= dv; c += 16) {
    if (copy) {
      for (int j = 0; j < keys; ++j) {
        _mm256_store_ps(slice + j * 16, _mm256_loadu_ps(v + j * dv + c));
        _mm256_store_ps(slice + j * 16 + 8, _mm256_loadu_ps(v + j * dv + c + 8));
      }
      pv_cols<2, false>(o + c, dv, p, ld_p, rows, slice, 16, keys, alpha, none);
    } else {
      pv_cols<2, false>(o + c, dv, p, ld_p, rows, v + c, dv, keys, alpha, none);
    }
  }
  if (c + 8 <= dv) {
    pv_cols<1, false>(o + c, dv, p, ld_p, rows, v + c, dv, keys, alpha, none);
    c += 8;
  }
  if (c < dv)
    pv_cols<1, true>(o + c, dv, p, ld_p, rows, v + c, dv, keys, alpha, tail_mask(dv - c));
}

}  // namespace

attention_kernels attention_kernels_avx2() { return {&scores_avx2, &softmax_avx2, &pv_avx2}; }

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected

namespace tessera {
namespace detail {
attention_kernels attention_kernels_avx2() { return {nullptr, nullptr, nullptr}; }
}  // namespace detail
}  // namespace tessera

#endif
