// attention_avx2: AVX2+FMA kernels of attention_f32 (driver in attention.cc).
//
// Prefill (prefill_avx2, one whole task of 16..96 query rows): the block runs
// transposed, queries along the vector lanes, in slivers of 24 queries (3 ymm):
//   Q^T sliver [D][24], pre-scaled by scale * log2(e) (8x8 register transposes)
//   S^T tile  = K rows (4 keys broadcast, read in place) x Q^T (3 vectors): 12
//               accumulators + 3 + 1 = 16 ymm; per D step 3 loads + 4 broadcasts feed
//               12 FMAs, no horizontal sums
//   softmax   down each column: max, p = exp2(s - m) (no scale multiply), sums are
//               plain vector ops, one query per lane; m, l, alpha are vectors too
//   O^T tile  [4 Dv rows][24] += V rows (4 values broadcast, in place) x P^T (3
//               vectors); O^T [Dv][24] per sliver in scratch, transposed into out
//               (divided by l) at the end
// Key blocks of 128 keys at D = 128 (K and V blocks 64 KB each, in L2); per block
// each sliver does S^T -> softmax -> O^T while its Q^T (12 KB) and P^T (12 KB) stay
// in L1. K/V rows are only 8 lines long, too short for the hardware prefetchers, so
// the next block is prefetched a few lines per tile (~10% at S2048). Causal: a sliver
// only visits keys up to its last query, and masks inside the diagonal tiles.
// exp2: max(x, -127), round by the 1.5 * 2^23 trick, degree-6 minimax polynomial on
// [-0.5, 0.5] (|rel err| < 1e-7), exponent by a shift; x <= -126.5 (masked -inf
// included) gives exactly 0, NaN propagates.
//
// Row kernels (decode, < 16 rows): S = scale * Q K^T as dot products along D, 3
// query rows x 4 keys (7 loads per 12 FMAs, hadd reductions), rows read in place so
// decode streams K once; row softmax with a Cephes-style exp (|rel err| < 2 ulp);
// O = alpha * O + P V as 6-row x 16-col register tiles, Dv tails masked.
//
// Roofline (Zen3 VM, 1 core, measured FMA peak 100 GFLOP/s): S^T and O^T tiles alone
// with L1-resident data run at 96-99 GFLOP/s; in the full S2048 D128 run the time
// splits ~44% S^T, ~46% O^T, ~5.5% softmax, ~4% Q/O transposes and the rest, for
// ~81 GFLOP/s overall (2 threads: 160-169).
// Everything is compiled with the target attribute and only called after
// cpu_features reports avx2+fma.
#include "attention.h"

#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>

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

// Column chunks outer, row groups inner: the keys x 16 slice of V (<= 4 KB) stays
// in L1 while every row of the block (< 16 here, see attention.cc) uses it.
__attribute__((target("avx2,fma"))) void pv_avx2(float* o, int64_t dv, const float* p,
                                                  int64_t ld_p, int rows, const float* v,
                                                  int keys, const float* alpha) {
  const __m256i none = _mm256_setzero_si256();
  int64_t c = 0;
  for (; c + 16 <= dv; c += 16)
    pv_cols<2, false>(o + c, dv, p, ld_p, rows, v + c, dv, keys, alpha, none);
  if (c + 8 <= dv) {
    pv_cols<1, false>(o + c, dv, p, ld_p, rows, v + c, dv, keys, alpha, none);
    c += 8;
  }
  if (c < dv)
    pv_cols<1, true>(o + c, dv, p, ld_p, rows, v + c, dv, keys, alpha, tail_mask(dv - c));
}

// ---- prefill: transposed tiles ---------------------------------------------------

constexpr int k_lanes = 24;  // queries per sliver: 3 ymm

// Keys per block of the transposed path: K and V blocks of ~64 KB each (128 keys at
// D = 128; they live in L2 while the slivers take turns), multiple of 4, 8..128. 128
// rather than 64 keys halves the O^T reload/rescale per key (~2%, within noise here).
int prefill_key_block(int64_t d, int64_t dv) {
  const int64_t fit = (16384 / std::max(d, dv)) & ~int64_t{3};
  return static_cast<int>(std::clamp<int64_t>(fit, 8, 128));
}

// 2^x for x <= 0 (or NaN, which propagates). x is clamped at -127 first, where the
// exponent field built from round(x) + 127 is 0, so anything below -126.5 (masked
// -inf included) gives exactly 0. round() by the 1.5 * 2^23 trick; 2^f on
// [-0.5, 0.5] by a degree-6 minimax polynomial (|rel err| < 1e-7).
TESSERA_AVX2 __m256 exp2_256(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-127.0f), x);  // maxps returns its 2nd operand on NaN
  const __m256 magic = _mm256_set1_ps(12582912.0f + 127.0f);
  const __m256 t = _mm256_add_ps(x, magic);          // bits: 0x4B400000 + 127 + round(x)
  const __m256 f = _mm256_sub_ps(x, _mm256_sub_ps(t, magic));
  __m256 y = _mm256_set1_ps(1.534581097e-4f);
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.33999309e-3f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(9.618489072e-3f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(5.550328642e-2f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(2.402264625e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(6.931471825e-1f));
  y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.0f));
  const __m256 e = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
  return _mm256_mul_ps(y, e);
}

// acc[r][:] += sum_{x < n} src[r * sr + x * sx] * rows[x][:] (rows k_lanes floats apart): the rank-1
// updates of both tiles below, one broadcast and 3 FMAs per (row, x).
template <int R>
TESSERA_AVX2 void accumulate_rows(__m256 (&acc)[R][3], const float* rows, int64_t n, const float* src, int64_t sr,
                                  int64_t sx) {
#pragma GCC unroll 2
  for (int64_t x = 0; x < n; ++x) {
    const __m256 q0 = _mm256_loadu_ps(rows + x * k_lanes);
    const __m256 q1 = _mm256_loadu_ps(rows + x * k_lanes + 8);
    const __m256 q2 = _mm256_loadu_ps(rows + x * k_lanes + 16);
    for (int r = 0; r < R; ++r) {
      const __m256 b = _mm256_broadcast_ss(src + r * sr + x * sx);
      acc[r][0] = _mm256_fmadd_ps(b, q0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(b, q1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(b, q2, acc[r][2]);
    }
  }
}

// S^T tile: pt[r][0..24) = sum_x k[r][x] * qt[x][0..24) for R keys (rows of K in place,
// d floats apart), qt = one Q sliver transposed [d][24].
template <int R>
TESSERA_AVX2 void st_tile(float* pt, const float* qt, const float* k, int64_t d) {
  __m256 acc[R][3];
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < 3; ++w) acc[r][w] = _mm256_setzero_ps();
  accumulate_rows<R>(acc, qt, d, k, d, 1);
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < 3; ++w) _mm256_storeu_ps(pt + r * k_lanes + 8 * w, acc[r][w]);
}

// O^T tile: rows c..c+R of one sliver's O^T [dv][24]:
//   ot[r][:] = alpha * ot[r][:] + sum_j v[j][r] * pt[j][:]   (first: ot = sum only)
// v = &V[k0][c] in place (rows dv floats apart).
template <int R>
TESSERA_AVX2 void ot_tile(float* ot, const float* pt, const float* v, int64_t dv, int keys,
                          bool first, const float* alpha) {
  __m256 acc[R][3];
  if (first) {
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < 3; ++w) acc[r][w] = _mm256_setzero_ps();
  } else {
    for (int w = 0; w < 3; ++w) {
      const __m256 a = _mm256_loadu_ps(alpha + 8 * w);
      for (int r = 0; r < R; ++r)
        acc[r][w] = _mm256_mul_ps(a, _mm256_loadu_ps(ot + r * k_lanes + 8 * w));
    }
  }
  accumulate_rows<R>(acc, pt, keys, v, 1, dv);
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < 3; ++w) _mm256_storeu_ps(ot + r * k_lanes + 8 * w, acc[r][w]);
}

// Online softmax down the key axis of one sliver's S^T [keys][24] (log2 units), in
// place: every step is vertical, one query per lane. NaN in a lane's scores or
// running max poisons that lane (P, m, l, alpha NaN). A lane whose max is still
// -inf gets p = 0 (alpha = 0 there, harmless: its O and l are still 0).
__attribute__((target("avx2,fma"), noinline)) void softmax_t(float* pt, int keys, float* m,
                                                               float* l, float* alpha) {
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int w = 0; w < 3; ++w) {
    float* col = pt + 8 * w;
    __m256 vmax = neg_inf;
    __m256 vnan = _mm256_setzero_ps();
    for (int j = 0; j < keys; ++j) {
      const __m256 x = _mm256_loadu_ps(col + j * k_lanes);
      vmax = _mm256_max_ps(x, vmax);  // drops NaN: tracked in vnan
      vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    const __m256 m_old = _mm256_loadu_ps(m + 8 * w);
    vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(m_old, m_old, _CMP_UNORD_Q));
    __m256 m_new = _mm256_max_ps(m_old, vmax);
    m_new = _mm256_blendv_ps(m_new, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()),
                             vnan);
    // subtract 0 where nothing is visible yet (-inf - -inf would be NaN)
    const __m256 m_sub =
        _mm256_blendv_ps(m_new, _mm256_setzero_ps(), _mm256_cmp_ps(m_new, neg_inf, _CMP_EQ_OQ));
    const __m256 a = exp2_256(_mm256_sub_ps(m_old, m_sub));
    __m256 sum = _mm256_setzero_ps();
    for (int j = 0; j < keys; ++j) {
      const __m256 p = exp2_256(_mm256_sub_ps(_mm256_loadu_ps(col + j * k_lanes), m_sub));
      _mm256_storeu_ps(col + j * k_lanes, p);
      sum = _mm256_add_ps(sum, p);
    }
    const __m256 l_old = _mm256_loadu_ps(l + 8 * w);
    _mm256_storeu_ps(l + 8 * w, _mm256_fmadd_ps(l_old, a, sum));
    _mm256_storeu_ps(m + 8 * w, m_new);
    _mm256_storeu_ps(alpha + 8 * w, a);
  }
}

// In place: t[r][c] <- t[c][r].
TESSERA_AVX2 void transpose8x8(__m256 t[8]) {
  __m256 u[8], w[8];
  for (int r = 0; r < 8; r += 2) {
    u[r] = _mm256_unpacklo_ps(t[r], t[r + 1]);
    u[r + 1] = _mm256_unpackhi_ps(t[r], t[r + 1]);
  }
  for (int r = 0; r < 8; r += 4) {
    w[r] = _mm256_shuffle_ps(u[r], u[r + 2], _MM_SHUFFLE(1, 0, 1, 0));
    w[r + 1] = _mm256_shuffle_ps(u[r], u[r + 2], _MM_SHUFFLE(3, 2, 3, 2));
    w[r + 2] = _mm256_shuffle_ps(u[r + 1], u[r + 3], _MM_SHUFFLE(1, 0, 1, 0));
    w[r + 3] = _mm256_shuffle_ps(u[r + 1], u[r + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int r = 0; r < 4; ++r) {
    t[r] = _mm256_permute2f128_ps(w[r], w[r + 4], 0x20);
    t[r + 4] = _mm256_permute2f128_ps(w[r], w[r + 4], 0x31);
  }
}

// Walks a float range one 64-byte line at a time, prefetching into L1.
struct line_prefetcher {
  const char* p;
  const char* end;
  line_prefetcher(const float* begin, int64_t n)
      : p(reinterpret_cast<const char*>(begin)), end(reinterpret_cast<const char*>(begin + n)) {}
  int64_t lines() const { return (end - p + 63) / 64; }
  TESSERA_AVX2 void step(int n) {
    for (int i = 0; i < n && p < end; ++i, p += 64) _mm_prefetch(p, _MM_HINT_T0);
  }
};

alignas(32) const float k_iota[k_lanes] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                           12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};

// S^T [nk][24] of one sliver against keys [0, nk) of the block (kb: K rows in place).
// mask (causal, consecutive positions; mask_from = k0 - position of lane 0): lane i
// hides key j when i < j + mask_from.
__attribute__((target("avx2,fma"), noinline)) void scores_sliver(float* pt, const float* qs,
                                                                  const float* kb, int64_t d,
                                                                  int nk, bool mask,
                                                                  int64_t mask_from,
                                                                  line_prefetcher& pf,
                                                                  int pf_step) {
  int j = 0;
  for (; j + 4 <= nk; j += 4) {
    pf.step(pf_step);
    st_tile<4>(pt + j * k_lanes, qs, kb + j * d, d);
  }
  switch (nk - j) {
    case 1: st_tile<1>(pt + j * k_lanes, qs, kb + j * d, d); break;
    case 2: st_tile<2>(pt + j * k_lanes, qs, kb + j * d, d); break;
    case 3: st_tile<3>(pt + j * k_lanes, qs, kb + j * d, d); break;
    default: break;
  }
  if (!mask) return;
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t jj = std::max<int64_t>(0, 1 - mask_from); jj < nk; ++jj) {
    const __m256 thr = _mm256_set1_ps(static_cast<float>(jj + mask_from));
    float* row = pt + jj * k_lanes;
    for (int w = 0; w < 3; ++w) {
      const __m256 hide = _mm256_cmp_ps(_mm256_load_ps(k_iota + 8 * w), thr, _CMP_LT_OQ);
      _mm256_storeu_ps(row + 8 * w,
                       _mm256_blendv_ps(_mm256_loadu_ps(row + 8 * w), neg_inf, hide));
    }
  }
}

// O^T [dv][24] of one sliver += V_blk^T P^T over keys [0, nk) (vb: V rows in place).
__attribute__((target("avx2,fma"), noinline)) void pv_sliver(float* os, const float* pt,
                                                              const float* vb, int64_t dv, int nk,
                                                              bool first, const float* alpha,
                                                              line_prefetcher& pf, int pf_step) {
  int64_t c = 0;
  for (; c + 4 <= dv; c += 4) {
    pf.step(pf_step);
    ot_tile<4>(os + c * k_lanes, pt, vb + c, dv, nk, first, alpha);
  }
  switch (dv - c) {
    case 1: ot_tile<1>(os + c * k_lanes, pt, vb + c, dv, nk, first, alpha); break;
    case 2: ot_tile<2>(os + c * k_lanes, pt, vb + c, dv, nk, first, alpha); break;
    case 3: ot_tile<3>(os + c * k_lanes, pt, vb + c, dv, nk, first, alpha); break;
    default: break;
  }
}

struct prefill_scratch {
  std::unique_ptr<float[]> buf;
  size_t size = 0;
  float* get(size_t n) {
    if (n + 8 > size) {
      buf.reset(new float[n + 8]);
      size = n + 8;
    }
    const uintptr_t p = reinterpret_cast<uintptr_t>(buf.get());
    return reinterpret_cast<float*>((p + 31) & ~uintptr_t{31});
  }
};

__attribute__((target("avx2,fma"))) void prefill_avx2(float* o, const float* q, const float* k,
                                                       const float* v, int rows, int64_t pos0,
                                                       int64_t pos_step,
                                                       const attention_f32_shape& s) {
  const int64_t d = s.dim, dv = s.dim_v;
  const int n_sl = (rows + k_lanes - 1) / k_lanes;
  const int bk = prefill_key_block(d, dv);
  const size_t qt_n = static_cast<size_t>(n_sl) * d * k_lanes;
  const size_t ot_n = static_cast<size_t>(n_sl) * dv * k_lanes;
  const size_t st_n = static_cast<size_t>(n_sl) * k_lanes;
  thread_local prefill_scratch scratch;
  float* qt = scratch.get(qt_n + ot_n + static_cast<size_t>(bk) * k_lanes + 3 * st_n);
  float* ot = qt + qt_n;
  float* pt = ot + ot_n;
  float* m = pt + static_cast<size_t>(bk) * k_lanes;
  float* l = m + st_n;
  float* alpha = l + st_n;
  bool init[(k_bq_max + k_lanes - 1) / k_lanes];

  // Q^T slivers [sliver][d][24], scaled by scale * log2(e) so softmax runs on exp2.
  // Whole 8-row x 8-column pieces go through 8x8 register transposes.
  const float qscale = s.scale * 1.44269504088896341f;
  const __m256 vqs = _mm256_set1_ps(qscale);
  const int64_t d8 = d & ~int64_t{7};
  for (int sl = 0; sl < n_sl; ++sl) {
    float* dst = qt + static_cast<size_t>(sl) * d * k_lanes;
    for (int i0 = 0; i0 < k_lanes; i0 += 8) {
      const int row0 = sl * k_lanes + i0;
      const int valid = std::clamp(rows - row0, 0, 8);
      if (valid == 8) {
        for (int64_t x = 0; x < d8; x += 8) {
          __m256 t[8];
          for (int r = 0; r < 8; ++r) t[r] = _mm256_loadu_ps(q + (row0 + r) * d + x);
          transpose8x8(t);
          for (int r = 0; r < 8; ++r)
            _mm256_storeu_ps(dst + (x + r) * k_lanes + i0, _mm256_mul_ps(vqs, t[r]));
        }
      }
      for (int64_t x = valid == 8 ? d8 : 0; x < d; ++x)
        for (int i = 0; i < 8; ++i)
          dst[x * k_lanes + i0 + i] = i < valid ? qscale * q[(row0 + i) * d + x] : 0.0f;
    }
    init[sl] = false;
  }
  std::fill(m, m + st_n, -std::numeric_limits<float>::infinity());
  std::fill(l, l + st_n, 0.0f);

  int64_t key_end = s.seq_k;
  if (s.causal) key_end = std::clamp<int64_t>(pos0 + (rows - 1) * pos_step + 1, 0, s.seq_k);

  for (int64_t k0 = 0; k0 < key_end; k0 += bk) {
    const int keys = static_cast<int>(std::min<int64_t>(bk, key_end - k0));
    const float* kb = k + k0 * d;
    const float* vb = v + k0 * dv;
    // The next K/V blocks are fetched while this one is in use, a few lines per tile
    // call: a K/V row is only a few lines long, too short a stream for the hardware
    // prefetchers, and each sliver's first touch would otherwise wait on L3/DRAM.
    const int64_t next_keys = std::min<int64_t>(bk, key_end - k0 - keys);
    line_prefetcher pk(kb + keys * d, next_keys * d), pv(vb + keys * dv, next_keys * dv);
    const int pk_step = static_cast<int>(pk.lines() / (n_sl * ((keys + 3) / 4)) + 1);
    const int pv_step = static_cast<int>(pv.lines() / (n_sl * ((dv + 3) / 4)) + 1);
    for (int sl = 0; sl < n_sl; ++sl) {
      const int lanes = std::min(k_lanes, rows - sl * k_lanes);
      const int64_t pos_s = pos0 + sl * k_lanes * pos_step;  // position of lane 0
      int nk = keys;
      if (s.causal) {
        nk = static_cast<int>(
            std::clamp<int64_t>(pos_s + (lanes - 1) * pos_step + 1 - k0, 0, keys));
        if (nk == 0) continue;  // no lane sees a key of this block: the step is the identity
      }
      float* ms = m + sl * k_lanes;
      float* ls = l + sl * k_lanes;
      float* as = alpha + sl * k_lanes;
      scores_sliver(pt, qt + static_cast<size_t>(sl) * d * k_lanes, kb, d, nk,
                    s.causal && pos_step == 1, k0 - pos_s, pk, pk_step);
      softmax_t(pt, nk, ms, ls, as);
      pv_sliver(ot + static_cast<size_t>(sl) * dv * k_lanes, pt, vb, dv, nk, !init[sl], as, pv,
                pv_step);
      init[sl] = true;
    }
  }

  // out rows = O^T columns / l (0 for a row that saw no key), 8x8 transposes for
  // whole pieces.
  const int64_t dv8 = dv & ~int64_t{7};
  for (int sl = 0; sl < n_sl; ++sl) {
    const float* os = ot + static_cast<size_t>(sl) * dv * k_lanes;
    for (int i0 = 0; i0 < k_lanes; i0 += 8) {
      const int row0 = sl * k_lanes + i0;
      const int valid = std::clamp(rows - row0, 0, 8);
      if (valid == 0) break;
      if (!init[sl]) {
        std::fill(o + row0 * dv, o + (row0 + valid) * dv, 0.0f);
        continue;
      }
      alignas(32) float inv[8];
      for (int i = 0; i < 8; ++i) {
        const float li = l[row0 + i];
        inv[i] = li > 0.0f ? 1.0f / li : 0.0f;
      }
      if (valid == 8) {
        for (int64_t c = 0; c < dv8; c += 8) {
          __m256 t[8];
          for (int r = 0; r < 8; ++r) t[r] = _mm256_loadu_ps(os + (c + r) * k_lanes + i0);
          transpose8x8(t);
          for (int r = 0; r < 8; ++r)
            _mm256_storeu_ps(o + (row0 + r) * dv + c,
                             _mm256_mul_ps(_mm256_set1_ps(inv[r]), t[r]));
        }
      }
      for (int i = 0; i < valid; ++i)
        for (int64_t c = valid == 8 ? dv8 : 0; c < dv; ++c)
          o[(row0 + i) * dv + c] = os[c * k_lanes + i0 + i] * inv[i];
    }
  }
}

}  // namespace

attention_kernels attention_kernels_avx2() {
  return {&scores_avx2, &softmax_avx2, &pv_avx2, &prefill_avx2};
}

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected

namespace tessera {
namespace detail {
attention_kernels attention_kernels_avx2() { return {nullptr, nullptr, nullptr, nullptr}; }
}  // namespace detail
}  // namespace tessera

#endif
