// gemm_avx2: AVX2+FMA kernels of gemm_f32 (driver in gemm.cc): the 6x16 micro-kernel
// and the unpacked small-M path.
//
// Register block: 6 rows x 16 cols = 12 ymm accumulators, 2 ymm for the B row,
// 1 for the broadcast A element (15 of 16 ymm). Per k step: 2 B loads, 6
// broadcasts, 12 FMAs, so the two FMA pipes of Haswell..Zen3 stay busy while
// the loads ride the two load ports. Packed A is [k][6], packed B is [k][16],
// both streamed linearly (B sliver = 24 KB at gemm_packed's kc = 384, 16 KB at 256,
// stays in L1).
// Edge tiles run the same arithmetic into a stack tile and copy the valid part,
// so an element's value never depends on where the tile boundary falls.
// Small-M path (m <= 4, decode GEMV): no packing. transB: R x C tiles of dot
// products along K (8 accumulators for m = 1, one hsum each at the end), K tail by
// masked loads. Else: c rows += A(r, p) * B row p, four B rows per pass so each
// 32-wide output tile is loaded/stored once per 4 rows of B; both stream B once.
// Compiled with the target attribute only: the file builds on baseline x86-64
// and is called only after cpu_features reports avx2+fma.
#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace tessera {
namespace detail {

namespace {

__attribute__((target("avx2,fma"))) void kernel_6x16(int64_t kc, const float* ap,
                                                      const float* bp, float* c, int64_t ldc,
                                                      int m_valid, int n_valid,
                                                      bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  // The C tile is read (accumulate) and written only after the k loop: fetch both
  // cache lines of each 64-byte row now (rows are rarely 64-byte aligned).
  for (int i = 0; i < m_valid; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }

#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(bp);
    const __m256 b1 = _mm256_loadu_ps(bp + 8);
    __m256 a;
    a = _mm256_broadcast_ss(ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += 6;
    bp += 16;
  }

  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                            {c30, c31}, {c40, c41}, {c50, c51}};
  if (m_valid == 6 && n_valid == 16) {
    for (int i = 0; i < 6; ++i) {
      float* row = c + i * ldc;
      __m256 v0 = acc[i][0], v1 = acc[i][1];
      if (accumulate) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(row + 8), v1);
      }
      _mm256_storeu_ps(row, v0);
      _mm256_storeu_ps(row + 8, v1);
    }
    return;
  }
  alignas(32) float tile[6][16];
  for (int i = 0; i < 6; ++i) {
    _mm256_store_ps(tile[i], acc[i][0]);
    _mm256_store_ps(tile[i] + 8, acc[i][1]);
  }
  for (int i = 0; i < m_valid; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      for (int j = 0; j < n_valid; ++j) row[j] += tile[i][j];
    } else {
      for (int j = 0; j < n_valid; ++j) row[j] = tile[i][j];
    }
  }
}

// ---- small M ----------------------------------------------------------------

alignas(32) const int32_t k_mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

__attribute__((target("avx2,fma"), always_inline)) inline __m256i tail_mask(int64_t n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k_mask_src + 8 - n));
}

__attribute__((target("avx2,fma"), always_inline)) inline float hsum(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 bfloat16 values widened to float32 (exact: shift into the high half).
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 widen_bf16x8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// IEEE float16 bits (a distinct pointer type selects the F16C conversion).
struct f16_bits {
  uint16_t v;
};

// 8 B values as float32, and the first n < 8 of them with zeros after (K tails).
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_b8(const float* p) {
  return _mm256_loadu_ps(p);
}
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_b8(const uint16_t* p) {
  return widen_bf16x8(p);
}
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_b8(const f16_bits* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_b_tail(const float* p, int64_t n,
                                                                             __m256i mask) {
  (void)n;
  return _mm256_maskload_ps(p, mask);
}
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_b_tail(const uint16_t* p, int64_t n,
                                                                             __m256i) {
  uint16_t t[8] = {};
  for (int64_t i = 0; i < n; ++i) t[i] = p[i];
  return widen_bf16x8(t);
}
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_b_tail(const f16_bits* p, int64_t n,
                                                                                  __m256i) {
  f16_bits t[8] = {};
  for (int64_t i = 0; i < n; ++i) t[i] = p[i];
  return load_b8(t);
}

// R rows x C columns of dot products over k (B rows j .. j+C-1 of a [n][k] B). B float32, or
// bfloat16 widened in registers (the decode GEMV then streams half the bytes of float32 weights).
template <int R, int C, class BT>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void dot_tile(
    float* c, int64_t ldc, const float* a, int64_t lda, const BT* b, int64_t k) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_ps();
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t x = 0; x < k8; x += 8) {
    __m256 av[R];
    for (int r = 0; r < R; ++r) av[r] = _mm256_loadu_ps(a + r * lda + x);
    for (int j = 0; j < C; ++j) {
      const __m256 bv = load_b8(b + j * k + x);
      for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
    }
  }
  if (k8 < k) {
    const __m256i mask = tail_mask(k - k8);
    __m256 av[R];
    for (int r = 0; r < R; ++r) av[r] = _mm256_maskload_ps(a + r * lda + k8, mask);
    for (int j = 0; j < C; ++j) {
      const __m256 bv = load_b_tail(b + j * k + k8, k - k8, mask);
      for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) c[r * ldc + j] = hsum(acc[r][j]);
}

// C columns per tile keeps accumulators + A vectors + 1 B vector within 16 ymm. B rows float32 or
// bfloat16 (BT = uint16_t).
template <int R, class BT>
__attribute__((target("avx2,fma,f16c"))) void dot_rows(float* c, int64_t ldc, const float* a,
                                                  int64_t lda, const BT* b, int64_t k,
                                                  int64_t j0, int64_t j1) {
  constexpr int C = R == 1 ? 8 : R == 2 ? 4 : R == 3 ? 4 : 2;
  int64_t j = j0;
  for (; j + C <= j1; j += C) dot_tile<R, C>(c + j, ldc, a, lda, b + j * k, k);
  for (; j < j1; ++j) dot_tile<R, 1>(c + j, ldc, a, lda, b + j * k, k);
}

// m (1..4) rows of dot products over columns [j0, j1); false for other m.
template <class BT>
bool dot_rows_m(float* c, int64_t ldc, const float* a, int64_t lda, int m, const BT* b, int64_t k,
                int64_t j0, int64_t j1) {
  switch (m) {
    case 1: dot_rows<1>(c, ldc, a, lda, b, k, j0, j1); break;
    case 2: dot_rows<2>(c, ldc, a, lda, b, k, j0, j1); break;
    case 3: dot_rows<3>(c, ldc, a, lda, b, k, j0, j1); break;
    case 4: dot_rows<4>(c, ldc, a, lda, b, k, j0, j1); break;
    default: return false;
  }
  return true;
}

// c[0..R)[cols of W vectors] (+)= sum over p_n (<= 8) rows of B of A(r, p) * B[p][:].
template <int R, int W, bool MASKED>
__attribute__((target("avx2,fma"), always_inline)) inline void axpy_tile(
    float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
    int64_t ldb, int p_n, bool first, __m256i mask) {
  __m256 acc[R][W];
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) {
      if (first) {
        acc[r][w] = _mm256_setzero_ps();
      } else if (MASKED && w == W - 1) {
        acc[r][w] = _mm256_maskload_ps(c + r * ldc + 8 * w, mask);
      } else {
        acc[r][w] = _mm256_loadu_ps(c + r * ldc + 8 * w);
      }
    }
  for (int p = 0; p < p_n; ++p) {
    __m256 bv[W];
    for (int w = 0; w < W; ++w)
      bv[w] = (MASKED && w == W - 1) ? _mm256_maskload_ps(b + p * ldb + 8 * w, mask)
                                     : _mm256_loadu_ps(b + p * ldb + 8 * w);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_set1_ps(a[r * a_rs + p * a_cs]);
      for (int w = 0; w < W; ++w) acc[r][w] = _mm256_fmadd_ps(av, bv[w], acc[r][w]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) {
      if (MASKED && w == W - 1) {
        _mm256_maskstore_ps(c + r * ldc + 8 * w, mask, acc[r][w]);
      } else {
        _mm256_storeu_ps(c + r * ldc + 8 * w, acc[r][w]);
      }
    }
}

// Walks K eight rows of B at a time (eight sequential streams), over columns [j0, j1) of c, which
// stay in L1/L2 between passes (each element's sum still runs in p order). W: 32 columns per tile
// for 1-2 rows, 16 for 3-4 (accumulators + B vectors within 16 ymm).
template <int R>
__attribute__((target("avx2,fma"))) void axpy_rows(float* c, int64_t ldc, const float* a,
                                                   int64_t a_rs, int64_t a_cs, const float* b,
                                                   int64_t n, int64_t k, int64_t j0, int64_t j1) {
  constexpr int W = R <= 2 ? 4 : 2;
  const __m256i none = _mm256_setzero_si256();
  for (int64_t p = 0; p < k; p += 8) {
    const int p_n = static_cast<int>(k - p < 8 ? k - p : 8);
    const float* ap = a + p * a_cs;
    const float* bp = b + p * n;
    const bool first = p == 0;
    int64_t j = j0;
    for (; j + 8 * W <= j1; j += 8 * W)
      axpy_tile<R, W, false>(c + j, ldc, ap, a_rs, a_cs, bp + j, n, p_n, first, none);
    for (; j + 8 <= j1; j += 8)
      axpy_tile<R, 1, false>(c + j, ldc, ap, a_rs, a_cs, bp + j, n, p_n, first, none);
    if (j < j1)
      axpy_tile<R, 1, true>(c + j, ldc, ap, a_rs, a_cs, bp + j, n, p_n, first, tail_mask(j1 - j));
  }
}



}  // namespace

bool gemm_small_m_bf16_avx2(float* c, const float* a, int64_t a_rs, int m, const uint16_t* b,
                            int64_t n, int64_t k, int64_t j0, int64_t j1) {
  return dot_rows_m(c, n, a, a_rs, m, b, k, j0, j1);
}

bool gemm_small_m_f16_avx2(float* c, const float* a, int64_t a_rs, int m, const uint16_t* b,
                           int64_t n, int64_t k, int64_t j0, int64_t j1) {
  return dot_rows_m(c, n, a, a_rs, m, reinterpret_cast<const f16_bits*>(b), k, j0, j1);
}

gemm_kernel_info gemm_kernel_avx2() { return {6, 16, &kernel_6x16}; }

// 8 columns at a time: the 6 rows (plus 2 zero rows) go through an 8x8 transpose and
// each column's 6 values are stored with an 8-wide store whose last 2 lanes the next
// column's store overwrites; the sliver's last column uses a masked store so nothing
// is written past dst[kc * 6].
__attribute__((target("avx2,fma"))) bool gemm_pack_a6_avx2(float* dst, const float* src,
                                                           int64_t lda, int64_t kc) {
  const __m256i six = tail_mask(6);
  const __m256 z = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    const __m256 r0 = _mm256_loadu_ps(src + p);
    const __m256 r1 = _mm256_loadu_ps(src + lda + p);
    const __m256 r2 = _mm256_loadu_ps(src + 2 * lda + p);
    const __m256 r3 = _mm256_loadu_ps(src + 3 * lda + p);
    const __m256 r4 = _mm256_loadu_ps(src + 4 * lda + p);
    const __m256 r5 = _mm256_loadu_ps(src + 5 * lda + p);
    // 2x2 blocks of 4x4 transposes: t* interleave row pairs, u* gather 4-row columns
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, z, 0x44), u5 = _mm256_shuffle_ps(t4, z, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, z, 0x44), u7 = _mm256_shuffle_ps(t5, z, 0xEE);
    // column j (rows 0-3 from u*, rows 4-5 from the matching u4..u7 half)
    const __m256 col[8] = {
        _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
        _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
        _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
        _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
    float* d = dst + p * 6;
    for (int j = 0; j < 7; ++j) _mm256_storeu_ps(d + j * 6, col[j]);
    if (p + 8 < kc) {
      _mm256_storeu_ps(d + 42, col[7]);
    } else {
      _mm256_maskstore_ps(d + 42, six, col[7]);
    }
  }
  for (; p < kc; ++p)
    for (int ii = 0; ii < 6; ++ii) dst[p * 6 + ii] = src[ii * lda + p];
  return true;
}

bool gemm_small_m_avx2(float* c, const float* a, int64_t a_rs, int64_t a_cs, int m,
                       const float* b, int64_t n, int64_t k, bool trans_b, int64_t j0,
                       int64_t j1) {
  if (trans_b) return dot_rows_m(c, n, a, a_rs, m, b, k, j0, j1);
  switch (m) {
    case 1: axpy_rows<1>(c, n, a, a_rs, a_cs, b, n, k, j0, j1); break;
    case 2: axpy_rows<2>(c, n, a, a_rs, a_cs, b, n, k, j0, j1); break;
    case 3: axpy_rows<3>(c, n, a, a_rs, a_cs, b, n, k, j0, j1); break;
    case 4: axpy_rows<4>(c, n, a, a_rs, a_cs, b, n, k, j0, j1); break;
    default: return false;
  }
  return true;
}

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected (cpu_features reports generic)

namespace tessera {
namespace detail {
gemm_kernel_info gemm_kernel_avx2() { return {0, 0, nullptr}; }
bool gemm_pack_a6_avx2(float*, const float*, int64_t, int64_t) { return false; }
bool gemm_small_m_bf16_avx2(float*, const float*, int64_t, int, const uint16_t*, int64_t, int64_t, int64_t,
                            int64_t) {
  return false;
}
bool gemm_small_m_f16_avx2(float*, const float*, int64_t, int, const uint16_t*, int64_t, int64_t, int64_t,
                           int64_t) {
  return false;
}
bool gemm_small_m_avx2(float*, const float*, int64_t, int64_t, int, const float*, int64_t, int64_t,
                       bool, int64_t, int64_t) {
  return false;
}
}  // namespace detail
}  // namespace tessera

#endif
