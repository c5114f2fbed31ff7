// gemm_avx2: the 6x16 AVX2+FMA micro-kernel of gemm_f32 (driver in gemm.cc).
//
// Register block: 6 rows x 16 cols = 12 ymm accumulators, 2 ymm for the B row,
// 1 for the broadcast A element (15 of 16 ymm). Per k step: 2 B loads, 6
// broadcasts, 12 FMAs, so the two FMA pipes of Haswell..Zen3 stay busy while
// the loads ride the two load ports. Packed A is [k][6], packed B is [k][16],
// both streamed linearly (B sliver = 16 KB at kc=256 stays in L1).
// Edge tiles run the same arithmetic into a stack tile and copy the valid part,
// so an element's value never depends on where the tile boundary falls.
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

  for (int i = 0; i < m_valid; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);

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

}  // namespace

gemm_kernel_info gemm_kernel_avx2() { return {6, 16, &kernel_6x16}; }

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected (cpu_features reports generic)

namespace tessera {
namespace detail {
gemm_kernel_info gemm_kernel_avx2() { return {0, 0, nullptr}; }
}  // namespace detail
}  // namespace tessera

#endif
