// qgemm_avx2_tile: the output store shared by the AVX2 qgemm tiles (qgemm_avx2.cc, qgemm_w4a8_avx2.cc).
// Include only from files compiled for x86-64 GCC/Clang (target attributes, immintrin).
#pragma once

#include <cstdint>

#include "avx2_target.h"

namespace tessera {
namespace detail {

// Rows [0, MR) of a register tile (NV vectors of 8 floats per row) into out (row stride ldo): all
// NV * 8 columns with full stores, or just the first `cols` through a stack copy at the right edge.
template <int MR, int NV>
TESSERA_AVX2_INLINE void store_tile(float* out, int64_t ldo, int cols, const __m256 (&tile)[MR][NV]) {
  alignas(32) float buf[NV * 8];
  for (int r = 0; r < MR; ++r) {
    float* o = out + r * ldo;
    if (cols == NV * 8) {
      for (int v = 0; v < NV; ++v) _mm256_storeu_ps(o + v * 8, tile[r][v]);
      continue;
    }
    for (int v = 0; v < NV; ++v) _mm256_store_ps(buf + v * 8, tile[r][v]);
    for (int c = 0; c < cols; ++c) o[c] = buf[c];
  }
}

}  // namespace detail
}  // namespace tessera
