// qgemm_w4a8_avx2: the AVX2 tile of W4A8 qgemm, int4 / uint4 weights against int8 activations
// (driver and the portable tile: qgemm.cc; layouts: qgemm.h a8_tile). Results equal the reference
// (lib/backends/js/quant.ts, w4a8) bit for bit: the products and sums are exact integers and the
// group epilogue rounds in float32 in the reference's order (a double epilogue cost as much as the
// dot products at group 32: 0.84 ms for the 1x4096x4096 GEMV on one thread).
//
// Per unit of 8 k and block of 8 columns (one 32-byte load, a lane = 8 nibbles of one column):
//   signed int4: w ^= 0x88..  (each nibble q -> q + 8 in [0, 15]; the driver's per-group sum of
//                              the activation codes takes the 8 back out)
//   lo = w & 0x0F..            nibbles 0, 2, 4, 6 of each lane as bytes (k even)
//   hi = (w >> 4) & 0x0F..     nibbles 1, 3, 5, 7 (k odd)
//   acc16 += vpmaddubsw(lo, [x0 x2 x4 x6]..) + vpmaddubsw(hi, [x1 x3 x5 x7]..)
// the activations as a 32-byte memory operand (pre-broadcast by the driver). vpmaddubsw pairs an
// unsigned code (<= 15) with a signed activation (|x| <= 127): |pair| <= 3810, never saturating;
// one unit adds at most 7620 to an int16 lane, so 4 units fit (30480) before vpmaddwd with ones
// widens the two int16 lanes of a column into its int32 sum. 9 ALU ops per 64 MACs for one row
// (the exact float path, qgemm_avx2.cc, needs ~4 per 8), so the GEMV reads weights faster than
// DRAM delivers them.
// Compiled with target attributes only; called only after cpu_features reports avx2+fma.
#include "avx2_target.h"
#include "qgemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <algorithm>

#include "qgemm_avx2_tile.h"

namespace tessera {
namespace detail {

namespace {

// Keeps a product rounded on its own (GCC would contract mul + add into an FMA): the epilogue
// must round exactly as the reference does.
TESSERA_AVX2_INLINE __m256 rounded(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}

template <int MR, int NV, bool ZP>
TESSERA_AVX2 void a8_tile_t(const a8_tile& t) {
  __m256 tile[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) tile[r][v] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x88));
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t bs = t.b.kp * 4;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    const int64_t u_end = t.b.gp[g + 1] / 8;
    __m256i acc32[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc32[r][v] = _mm256_setzero_si256();
    for (int64_t u0 = t.b.gp[g] / 8; u0 < u_end; u0 += 4) {
      const int64_t u1 = std::min(u_end, u0 + 4);
      __m256i acc16[MR][NV];
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) acc16[r][v] = _mm256_setzero_si256();
      for (int64_t u = u0; u < u1; ++u) {
        for (int v = 0; v < NV; ++v) {
          __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.b.w + v * bs + u * 32));
          if (!ZP) w = _mm256_xor_si256(w, flip);
          const __m256i lo = _mm256_and_si256(w, low);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
          for (int r = 0; r < MR; ++r) {
            const __m256i* xr = reinterpret_cast<const __m256i*>(t.xb + r * t.ldx + u * 64);
            const __m256i e = _mm256_maddubs_epi16(lo, _mm256_load_si256(xr));
            const __m256i o = _mm256_maddubs_epi16(hi, _mm256_load_si256(xr + 1));
            acc16[r][v] = _mm256_add_epi16(acc16[r][v], _mm256_add_epi16(e, o));
          }
        }
      }
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v)
          acc32[r][v] = _mm256_add_epi32(acc32[r][v], _mm256_madd_epi16(acc16[r][v], ones));
    }
    // acc -= zero * sumx (int32, exact); out = out + (float(acc) * sx) * scale, each op rounded
    for (int v = 0; v < NV; ++v) {
      const __m256 sc = _mm256_loadu_ps(t.b.scales + v * t.b.lds + g * 8);
      const __m256i z = ZP ? _mm256_cvttps_epi32(_mm256_loadu_ps(t.b.zeros + v * t.b.lds + g * 8))
                           : _mm256_set1_epi32(8);
      for (int r = 0; r < MR; ++r) {
        const __m256i corr = _mm256_mullo_epi32(z, _mm256_set1_epi32(t.sumx[r * t.ld_g + g]));
        const __m256 a = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc32[r][v], corr));
        const __m256 p = rounded(_mm256_mul_ps(rounded(_mm256_mul_ps(a, _mm256_set1_ps(t.sx[r * t.ld_g + g]))), sc));
        tile[r][v] = _mm256_add_ps(tile[r][v], p);
      }
    }
  }
  store_tile<MR, NV>(t.out, t.ldo, t.cols, tile);
}

template <bool ZP>
struct a8_run {
  const a8_tile& t;
  template <int MR, int NV>
  void operator()() const {
    a8_tile_t<MR, NV, ZP>(t);
  }
};

}  // namespace

bool a8_tile_avx2(const a8_tile& t) {
  for (int64_t g = 0; g < t.b.groups; ++g)
    if ((t.b.gp[g + 1] - t.b.gp[g]) / 8 > k_a8_max_units) return false;  // int32 sums could wrap
  return t.zp ? tile_dispatch(t.rows, t.nv, a8_run<true>{t}) : tile_dispatch(t.rows, t.nv, a8_run<false>{t});
}

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected (cpu_features reports generic)

namespace tessera {
namespace detail {
bool a8_tile_avx2(const a8_tile&) { return false; }
}  // namespace detail
}  // namespace tessera

#endif
