// qgemm_avx2: AVX2+FMA kernels of qgemm (driver, layouts and the arithmetic in qgemm.cc).
//
// int8 tile (rows x nv blocks of 8 columns, 1x4 / 2x3 / 3x2 / 4x2 register blocks): per k-quad,
// one 32-byte load per block is 4 k of 8 columns; per row the 4 activation bytes are broadcast.
//   t = vpsignb(x, w)         x * sign(w), |x| <= 127 so the negation never wraps
//   t = vpmaddubsw(|w|, t)    u8 x s8 pairs: |pair| <= 2 * 128 * 127 = 32512, never saturates
//   t = vpmaddwd(t, ones)     int32 sums of 4 products
// |w| goes on the unsigned side so a -128 weight (which the reference accepts) stays exact.
// 4 ALU ops per 32 MACs, 2 of them on the multiply pipes: about 32 MAC/cycle/core at best.
// Group epilogue in double: out += (acc * sx) * scale, the reference's operation order; the
// mul and add are kept apart (no contraction) so results equal the reference bit for bit.
//
// Weight-only tiles keep acc[rows][nv] f32 accumulators per K group and fold the scale in
// once per group. int4: a lane holds 8 nibbles (8 k of one column); nibble i is
// srai(slli(w, 28 - 4i), 28) (srli for uint4, then minus the zero point), then cvtdq2ps:
// ~4 ops per 8 MACs. fp8: a lane holds 4 bytes; byte j is srai(slli(w, 24 - 8j), 4) & 0x87f00000
// (sign to bit 31, exponent and mantissa aligned with float32's), times 2^120 to re-bias: exact
// for normals and subnormals alike. Panel dequant (M > 4) writes (q - zero) * scale rounded once,
// exactly the reference's float32 weights.
// Compiled with target attributes only; called only after cpu_features reports avx2+fma.
#include "qgemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>

#define TESSERA_AVX2 __attribute__((target("avx2,fma")))
#define TESSERA_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace tessera {
namespace detail {

namespace {

// ---- int8 ---------------------------------------------------------------------------------

// An optimization barrier: keeps a product rounded on its own (GCC contracts mul + add into FMA
// even under -std=c++17), which the bit-exact double epilogue needs.
template <class T>
TESSERA_AVX2_INLINE T rounded(T v) {
  __asm__("" : "+x"(v));
  return v;
}

// c += vpmaddwd(vpmaddubsw(|w|, sign(a, w)), ones) as one unit: left to itself GCC issues a whole
// step's products first, runs out of registers and spills accumulators (2x slower).
TESSERA_AVX2_INLINE void sign_madd_acc(__m256i& c, __m256i a, __m256i w, __m256i aw, __m256i ones) {
  __m256i t;
  __asm__(
      "vpsignb %[w], %[a], %[t]\n\t"
      "vpmaddubsw %[t], %[aw], %[t]\n\t"
      "vpmaddwd %[ones], %[t], %[t]\n\t"
      "vpaddd %[t], %[c], %[c]"
      : [c] "+x"(c), [t] "=&x"(t)
      : [a] "x"(a), [w] "x"(w), [aw] "x"(aw), [ones] "x"(ones));
}

template <int MR, int NV>
TESSERA_AVX2_INLINE void q8_run(__m256i (&acc)[MR][NV], const int8_t* x, int64_t ldx,
                                const int8_t* w, int64_t bs, int64_t nq) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_si256();
  for (int64_t q = 0; q < nq; ++q) {
    __m256i wv[NV], aw[NV];
    for (int v = 0; v < NV; ++v) {
      wv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + v * bs + q * 32));
      aw[v] = _mm256_abs_epi8(wv[v]);
    }
    for (int r = 0; r < MR; ++r) {
      int32_t a4;
      std::memcpy(&a4, x + r * ldx + q * 4, 4);
      const __m256i a = _mm256_set1_epi32(a4);
      for (int v = 0; v < NV; ++v) sign_madd_acc(acc[r][v], a, wv[v], aw[v], ones);
    }
  }
}

// d[r][8v .. 8v+8) += (acc * sx[r]) * scale of block v, in double, no FMA.
template <int MR, int NV>
TESSERA_AVX2_INLINE void q8_epilogue(double (&d)[MR][NV * 8], const __m256i (&acc)[MR][NV],
                                     const double* sx, const float* s, int64_t lds) {
  for (int v = 0; v < NV; ++v) {
    const __m256 sc = _mm256_loadu_ps(s + v * lds);
    const __m256d s_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(sc));
    const __m256d s_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(sc, 1));
    for (int r = 0; r < MR; ++r) {
      const __m256d sxv = _mm256_set1_pd(sx[r]);
      __m256d lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(acc[r][v]));
      __m256d hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(acc[r][v], 1));
      lo = rounded(_mm256_mul_pd(_mm256_mul_pd(lo, sxv), s_lo));
      hi = rounded(_mm256_mul_pd(_mm256_mul_pd(hi, sxv), s_hi));
      double* dp = d[r] + v * 8;
      _mm256_storeu_pd(dp, _mm256_add_pd(_mm256_loadu_pd(dp), lo));
      _mm256_storeu_pd(dp + 4, _mm256_add_pd(_mm256_loadu_pd(dp + 4), hi));
    }
  }
}

template <int MR, int NV>
TESSERA_AVX2 void q8_tile_t(const q8_tile& t) {
  double d[MR][NV * 8];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV * 8; ++c) d[r][c] = 0.0;
  const int64_t bs = t.b.kp * 8;
  const int8_t* w8 = reinterpret_cast<const int8_t*>(t.b.w);
  __m256i acc[MR][NV];
  for (int64_t g = 0; g < t.b.groups; ++g) {
    const int64_t p0 = t.b.gp[g];
    const int64_t nq = (t.b.gp[g + 1] - p0) / 4;
    const float* s = t.b.scales + g * 8;
    if (nq <= k_q8_max_quads) {
      q8_run<MR, NV>(acc, t.xq + p0, t.ldx, w8 + p0 * 8, bs, nq);
      q8_epilogue<MR, NV>(d, acc, t.sx, s, t.b.lds);
      continue;
    }
    // A group longer than one int32 run: exact int64 sums of runs, then the same epilogue.
    int64_t wide[MR][NV * 8] = {};
    for (int64_t q0 = 0; q0 < nq; q0 += k_q8_max_quads) {
      const int64_t n = std::min(k_q8_max_quads, nq - q0);
      q8_run<MR, NV>(acc, t.xq + p0 + q0 * 4, t.ldx, w8 + (p0 + q0 * 4) * 8, bs, n);
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) {
          alignas(32) int32_t lane[8];
          _mm256_store_si256(reinterpret_cast<__m256i*>(lane), acc[r][v]);
          for (int c = 0; c < 8; ++c) wide[r][v * 8 + c] += lane[c];
        }
    }
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NV * 8; ++c) {
        const double prod = static_cast<double>(wide[r][c]) * t.sx[r];
        d[r][c] += rounded(prod * static_cast<double>(s[(c / 8) * t.b.lds + c % 8]));
      }
  }
  for (int r = 0; r < t.rows; ++r) {
    float* o = t.out + r * t.ldo;
    for (int c = 0; c < t.cols; ++c) o[c] = static_cast<float>(d[r][c]);
  }
}

// ---- int8, int16 form (6 rows x 1 block) ----------------------------------------------------
// Activations as int16, the tile's 6 rows interleaved by k-quad (one stream); per k-quad the 32 weight bytes of a block are sign-extended in two
// halves (vpmovsxbw: columns 0-3 and 4-7, each 4 k as int16), and per row the quad's 4 int16
// activations are broadcast as one 64-bit lane. vpmaddwd then gives int32 lanes (column, k pair):
// two exact products summed, |lane| <= 2 * 127 * 128 per quad. Registers: row r accumulates in
// ymm(2r) / ymm(2r+1), weights ymm12 / ymm13, broadcast ymm14, product ymm15 (all 16 in use, so
// the loop is written out in asm: GCC otherwise spills accumulators).

#define TESSERA_Q8W_ROW(OFF, C0, C1)             \
  "vpbroadcastq " OFF "(%[x]), %%ymm14\n\t"      \
  "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"       \
  "vpaddd %%ymm15, %%ymm" C0 ", %%ymm" C0 "\n\t" \
  "vpmaddwd %%ymm13, %%ymm14, %%ymm15\n\t"       \
  "vpaddd %%ymm15, %%ymm" C1 ", %%ymm" C1 "\n\t"
// One k-quad at weight byte offset W and panel byte offset X (a literal: X + 8r for row r).
#define TESSERA_Q8W_QUAD(W, X0, X1, X2, X3, X4, X5, ROWS) \
  "vpmovsxbw " W "(%[w]), %%ymm12\n\t"                    \
  "vpmovsxbw " W "+16(%[w]), %%ymm13\n\t" ROWS(X0, X1, X2, X3, X4, X5)
#define TESSERA_Q8W_ROWS1(X0, X1, X2, X3, X4, X5) TESSERA_Q8W_ROW(X0, "0", "1")
#define TESSERA_Q8W_ROWS2(X0, X1, X2, X3, X4, X5) \
  TESSERA_Q8W_ROWS1(X0, X1, X2, X3, X4, X5) TESSERA_Q8W_ROW(X1, "2", "3")
#define TESSERA_Q8W_ROWS3(X0, X1, X2, X3, X4, X5) \
  TESSERA_Q8W_ROWS2(X0, X1, X2, X3, X4, X5) TESSERA_Q8W_ROW(X2, "4", "5")
#define TESSERA_Q8W_ROWS4(X0, X1, X2, X3, X4, X5) \
  TESSERA_Q8W_ROWS3(X0, X1, X2, X3, X4, X5) TESSERA_Q8W_ROW(X3, "6", "7")
#define TESSERA_Q8W_ROWS5(X0, X1, X2, X3, X4, X5) \
  TESSERA_Q8W_ROWS4(X0, X1, X2, X3, X4, X5) TESSERA_Q8W_ROW(X4, "8", "9")
#define TESSERA_Q8W_ROWS6(X0, X1, X2, X3, X4, X5) \
  TESSERA_Q8W_ROWS5(X0, X1, X2, X3, X4, X5) TESSERA_Q8W_ROW(X5, "10", "11")
// Zeroes the accumulators, runs n2 double quads then one more quad if odd, stores to acc.
#define TESSERA_Q8W_LOOP(ROWS)                                                                   \
  __asm__ volatile(                                                                              \
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"                                                         \
      "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"                                                         \
      "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"                                                         \
      "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"                                                         \
      "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"                                                         \
      "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"                                                         \
      "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"                                                         \
      "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"                                                         \
      "vpxor %%xmm8, %%xmm8, %%xmm8\n\t"                                                         \
      "vpxor %%xmm9, %%xmm9, %%xmm9\n\t"                                                         \
      "vpxor %%xmm10, %%xmm10, %%xmm10\n\t"                                                      \
      "vpxor %%xmm11, %%xmm11, %%xmm11\n\t"                                                      \
      "test %[n2], %[n2]\n\t"                                                                    \
      "jz 2f\n\t"                                                                                \
      ".p2align 4\n"                                                                             \
      "1:\n\t" TESSERA_Q8W_QUAD("0", "0", "8", "16", "24", "32", "40", ROWS)                     \
          TESSERA_Q8W_QUAD("32", "48", "56", "64", "72", "80", "88", ROWS)                       \
      "add $64, %[w]\n\t"                                                                        \
      "add $96, %[x]\n\t"                                                                        \
      "dec %[n2]\n\t"                                                                            \
      "jnz 1b\n"                                                                                 \
      "2:\n\t"                                                                                   \
      "test %[odd], %[odd]\n\t"                                                                  \
      "jz 3f\n\t" TESSERA_Q8W_QUAD("0", "0", "8", "16", "24", "32", "40", ROWS)                  \
      "3:\n\t"                                                                                   \
      "vmovdqu %%ymm0, (%[o])\n\t"                                                               \
      "vmovdqu %%ymm1, 32(%[o])\n\t"                                                             \
      "vmovdqu %%ymm2, 64(%[o])\n\t"                                                             \
      "vmovdqu %%ymm3, 96(%[o])\n\t"                                                             \
      "vmovdqu %%ymm4, 128(%[o])\n\t"                                                            \
      "vmovdqu %%ymm5, 160(%[o])\n\t"                                                            \
      "vmovdqu %%ymm6, 192(%[o])\n\t"                                                            \
      "vmovdqu %%ymm7, 224(%[o])\n\t"                                                            \
      "vmovdqu %%ymm8, 256(%[o])\n\t"                                                            \
      "vmovdqu %%ymm9, 288(%[o])\n\t"                                                            \
      "vmovdqu %%ymm10, 320(%[o])\n\t"                                                           \
      "vmovdqu %%ymm11, 352(%[o])\n\t"                                                           \
      : [w] "+r"(w), [x] "+r"(x), [n2] "+r"(n2)                                                  \
      : [odd] "r"(odd), [o] "r"(acc)                                                             \
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc")

// acc[2r + h][8] = int32 lanes of row r over nq >= 1 quads from x (a k-quad interleaved panel:
// [quad][6 rows][4] int16) and w (one block).
template <int MR>
TESSERA_AVX2_INLINE void q8w_run(int32_t (&acc)[12][8], const int16_t* x, const int8_t* w,
                                 int64_t nq) {
  int64_t n2 = nq / 2;
  const int64_t odd = nq & 1;
  if constexpr (MR == 1) TESSERA_Q8W_LOOP(TESSERA_Q8W_ROWS1);
  if constexpr (MR == 2) TESSERA_Q8W_LOOP(TESSERA_Q8W_ROWS2);
  if constexpr (MR == 3) TESSERA_Q8W_LOOP(TESSERA_Q8W_ROWS3);
  if constexpr (MR == 4) TESSERA_Q8W_LOOP(TESSERA_Q8W_ROWS4);
  if constexpr (MR == 5) TESSERA_Q8W_LOOP(TESSERA_Q8W_ROWS5);
  if constexpr (MR == 6) TESSERA_Q8W_LOOP(TESSERA_Q8W_ROWS6);
}

// Row r's 8 column sums: (column, k pair) lanes added pairwise, back in column order.
TESSERA_AVX2_INLINE __m256i q8w_row_sums(const int32_t (&acc)[12][8], int r) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc[2 * r]));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc[2 * r + 1]));
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);  // [c0 c1 c4 c5|c2 c3 c6 c7]
}

template <int MR>
TESSERA_AVX2 void q8w_tile_t(const q8_tile& t) {
  __m256d d[MR][2];
  for (int r = 0; r < MR; ++r) d[r][0] = d[r][1] = _mm256_setzero_pd();
  const int8_t* w8 = reinterpret_cast<const int8_t*>(t.b.w);
  alignas(32) int32_t acc[12][8];
  for (int64_t g = 0; g < t.b.groups; ++g) {
    const int64_t p0 = t.b.gp[g];
    const int64_t nq = (t.b.gp[g + 1] - p0) / 4;
    const __m256 sc = _mm256_loadu_ps(t.b.scales + g * 8);
    const __m256d s_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(sc));
    const __m256d s_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(sc, 1));
    if (nq <= k_q8_max_quads) {
      __m256i sums[MR];
      if (nq > 0) {
        q8w_run<MR>(acc, t.xw + p0 / 4 * k_q8w_panel, w8 + p0 * 8, nq);
        for (int r = 0; r < MR; ++r) sums[r] = q8w_row_sums(acc, r);
      } else {
        for (int r = 0; r < MR; ++r) sums[r] = _mm256_setzero_si256();
      }
      // d += (acc * sx) * scale in double, the products rounded on their own (no FMA).
      for (int r = 0; r < MR; ++r) {
        const __m256d sxv = _mm256_set1_pd(t.sx[r]);
        __m256d lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(sums[r]));
        __m256d hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(sums[r], 1));
        lo = rounded(_mm256_mul_pd(_mm256_mul_pd(lo, sxv), s_lo));
        hi = rounded(_mm256_mul_pd(_mm256_mul_pd(hi, sxv), s_hi));
        d[r][0] = _mm256_add_pd(d[r][0], lo);
        d[r][1] = _mm256_add_pd(d[r][1], hi);
      }
      continue;
    }
    // A group longer than one int32 run: exact int64 sums of runs, then the same epilogue.
    int64_t wide[MR][8] = {};
    for (int64_t q0 = 0; q0 < nq; q0 += k_q8_max_quads) {
      const int64_t n = std::min(k_q8_max_quads, nq - q0);
      q8w_run<MR>(acc, t.xw + (p0 / 4 + q0) * k_q8w_panel, w8 + (p0 + q0 * 4) * 8, n);
      for (int r = 0; r < MR; ++r) {
        alignas(32) int32_t lane[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lane), q8w_row_sums(acc, r));
        for (int c = 0; c < 8; ++c) wide[r][c] += lane[c];
      }
    }
    alignas(32) double sl[8];
    _mm256_store_pd(sl, s_lo);
    _mm256_store_pd(sl + 4, s_hi);
    for (int r = 0; r < MR; ++r) {
      alignas(32) double dv[8];
      _mm256_store_pd(dv, d[r][0]);
      _mm256_store_pd(dv + 4, d[r][1]);
      for (int c = 0; c < 8; ++c) {
        const double prod = static_cast<double>(wide[r][c]) * t.sx[r];
        dv[c] += rounded(prod * sl[c]);
      }
      d[r][0] = _mm256_load_pd(dv);
      d[r][1] = _mm256_load_pd(dv + 4);
    }
  }
  for (int r = 0; r < t.rows; ++r) {
    const __m256 v = _mm256_set_m128(_mm256_cvtpd_ps(d[r][1]), _mm256_cvtpd_ps(d[r][0]));
    float* o = t.out + r * t.ldo;
    if (t.cols == 8) {
      _mm256_storeu_ps(o, v);
    } else {
      alignas(32) float buf[8];
      _mm256_store_ps(buf, v);
      for (int c = 0; c < t.cols; ++c) o[c] = buf[c];
    }
  }
}

// ---- weight-only --------------------------------------------------------------------------

// A single row has too few FMA chains to hide the FMA latency: it alternates two accumulator
// sets along k (S = 2), summed at the end of each group.
template <int MR>
constexpr int k_sets = MR == 1 ? 2 : 1;

template <int MR, int NV>
TESSERA_AVX2_INLINE void wo_group_end(__m256 (&tile)[MR][NV],
                                      __m256 (&acc)[k_sets<MR>][MR][NV], const float* s,
                                      int64_t lds) {
  for (int v = 0; v < NV; ++v) {
    const __m256 sv = _mm256_loadu_ps(s + v * lds);
    for (int r = 0; r < MR; ++r) {
      __m256 a = acc[0][r][v];
      if (k_sets<MR> == 2) a = _mm256_add_ps(a, acc[k_sets<MR> - 1][r][v]);
      tile[r][v] = _mm256_fmadd_ps(a, sv, tile[r][v]);
      for (int set = 0; set < k_sets<MR>; ++set) acc[set][r][v] = _mm256_setzero_ps();
    }
  }
}

template <int MR, int NV>
TESSERA_AVX2_INLINE void wo_store(const wo_tile& t, const __m256 (&tile)[MR][NV]) {
  alignas(32) float buf[NV * 8];
  for (int r = 0; r < MR; ++r) {
    float* o = t.out + r * t.ldo;
    if (t.cols == NV * 8) {
      for (int v = 0; v < NV; ++v) _mm256_storeu_ps(o + v * 8, tile[r][v]);
      continue;
    }
    for (int v = 0; v < NV; ++v) _mm256_store_ps(buf + v * 8, tile[r][v]);
    for (int c = 0; c < t.cols; ++c) o[c] = buf[c];
  }
}

// Code i (0..7) of each lane of w: nibble i as a float (signed int4, or unsigned minus zero).
template <int I, bool ZP>
TESSERA_AVX2_INLINE __m256 int4_code(__m256i w, __m256 z) {
  const __m256i hi = I == 7 ? w : _mm256_slli_epi32(w, 28 - 4 * I);
  const __m256 q = _mm256_cvtepi32_ps(ZP ? _mm256_srli_epi32(hi, 28) : _mm256_srai_epi32(hi, 28));
  return ZP ? _mm256_sub_ps(q, z) : q;
}

// Code j (0..3) of each lane of w: e4m3fn byte j decoded to its float value (0x7f -> 480).
template <int J>
TESSERA_AVX2_INLINE __m256 fp8_code(__m256i w) {
  const __m256i top = J == 3 ? w : _mm256_slli_epi32(w, 24 - 8 * J);
  const __m256i keep = _mm256_set1_epi32(static_cast<int32_t>(0x87F00000u));
  const __m256i bits = _mm256_and_si256(_mm256_srai_epi32(top, 4), keep);
  return _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(1.329227995784916e36f));  // 2^120
}

template <int MR, int NV, bool ZP, int I>
TESSERA_AVX2_INLINE void int4_k(__m256 (&acc)[k_sets<MR>][MR][NV], const __m256i (&wv)[NV],
                                const __m256 (&zv)[NV], const float* x, int64_t ldx) {
  constexpr int set = I % k_sets<MR>;
  __m256 xb[MR];
  for (int r = 0; r < MR; ++r) xb[r] = _mm256_broadcast_ss(x + r * ldx + I);
  for (int v = 0; v < NV; ++v) {
    const __m256 f = int4_code<I, ZP>(wv[v], zv[v]);
    for (int r = 0; r < MR; ++r) acc[set][r][v] = _mm256_fmadd_ps(xb[r], f, acc[set][r][v]);
  }
}

template <int MR, int NV, bool ZP, int... I>
TESSERA_AVX2_INLINE void int4_unit(__m256 (&acc)[k_sets<MR>][MR][NV], const __m256i (&wv)[NV],
                                   const __m256 (&zv)[NV], const float* x, int64_t ldx,
                                   std::integer_sequence<int, I...>) {
  (int4_k<MR, NV, ZP, I>(acc, wv, zv, x, ldx), ...);
}

template <int MR, int NV, int J>
TESSERA_AVX2_INLINE void fp8_k(__m256 (&acc)[k_sets<MR>][MR][NV], const __m256i (&wv)[NV],
                               const float* x, int64_t ldx) {
  constexpr int set = J % k_sets<MR>;
  __m256 xb[MR];
  for (int r = 0; r < MR; ++r) xb[r] = _mm256_broadcast_ss(x + r * ldx + J);
  for (int v = 0; v < NV; ++v) {
    const __m256 f = fp8_code<J>(wv[v]);
    for (int r = 0; r < MR; ++r) acc[set][r][v] = _mm256_fmadd_ps(xb[r], f, acc[set][r][v]);
  }
}

template <int MR, int NV, int... J>
TESSERA_AVX2_INLINE void fp8_unit(__m256 (&acc)[k_sets<MR>][MR][NV], const __m256i (&wv)[NV], const float* x,
                                  int64_t ldx, std::integer_sequence<int, J...>) {
  (fp8_k<MR, NV, J>(acc, wv, x, ldx), ...);
}

template <bool ZP, int... I>
TESSERA_AVX2_INLINE void int4_panel_unit(float* dst, __m256i w, __m256 z, __m256 s,
                                         std::integer_sequence<int, I...>) {
  (_mm256_storeu_ps(dst + I * 16, _mm256_mul_ps(int4_code<I, ZP>(w, z), s)), ...);
}

template <int... J>
TESSERA_AVX2_INLINE void fp8_panel_unit(float* dst, __m256i w, __m256 s,
                                        std::integer_sequence<int, J...>) {
  (_mm256_storeu_ps(dst + J * 16, _mm256_mul_ps(fp8_code<J>(w), s)), ...);
}

template <int MR, int NV, bool ZP>
TESSERA_AVX2 void int4_tile_t(const wo_tile& t) {
  __m256 tile[MR][NV], acc[k_sets<MR>][MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      tile[r][v] = _mm256_setzero_ps();
      for (int set = 0; set < k_sets<MR>; ++set) acc[set][r][v] = _mm256_setzero_ps();
    }
  const int64_t bs = t.b.kp * 4;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    __m256 zv[NV];
    for (int v = 0; v < NV; ++v)
      zv[v] = ZP ? _mm256_loadu_ps(t.b.zeros + v * t.b.lds + g * 8) : _mm256_setzero_ps();
    for (int64_t u = t.b.gp[g] / 8; u < t.b.gp[g + 1] / 8; ++u) {
      __m256i wv[NV];
      for (int v = 0; v < NV; ++v)
        wv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.b.w + v * bs + u * 32));
      int4_unit<MR, NV, ZP>(acc, wv, zv, t.x + u * 8, t.ldx, std::make_integer_sequence<int, 8>{});
    }
    wo_group_end<MR, NV>(tile, acc, t.b.scales + g * 8, t.b.lds);
  }
  wo_store<MR, NV>(t, tile);
}

// Signed int4 on activations pre-scaled by 2^-28 (the driver's x' = x * 2^-28, exact: it checks
// that no nonzero |x| falls below 2^-98): nibble i moved to the top of its lane and masked,
// (w << (28 - 4i)) & 0xF0000000, is q * 2^28 as an int32, so cvtdq2ps gives q * 2^28 exactly and
// x' * (q * 2^28) = x * q: the same products, FMAs and rounding as the srai decode, with the
// arithmetic shift traded for an AND, which Zen 3 issues on more pipes (nibble 7 needs no shift).
template <int I>
TESSERA_AVX2_INLINE __m256 int4s_code(__m256i w, __m256i mask) {
  const __m256i t = I == 7 ? w : _mm256_slli_epi32(w, 28 - 4 * I);
  return _mm256_cvtepi32_ps(_mm256_and_si256(t, mask));
}

template <int MR, int NV, int I>
TESSERA_AVX2_INLINE void int4s_k(__m256 (&acc)[MR][NV], const __m256i (&wv)[NV], __m256i mask,
                                 const float* x, int64_t ldx) {
  __m256 xb[MR];
  for (int r = 0; r < MR; ++r) xb[r] = _mm256_broadcast_ss(x + r * ldx + I);
  for (int v = 0; v < NV; ++v) {
    const __m256 f = int4s_code<I>(wv[v], mask);
    for (int r = 0; r < MR; ++r) acc[r][v] = _mm256_fmadd_ps(xb[r], f, acc[r][v]);
  }
}

template <int MR, int NV, int... I>
TESSERA_AVX2_INLINE void int4s_unit(__m256 (&acc)[MR][NV], const __m256i (&wv)[NV], __m256i mask,
                                    const float* x, int64_t ldx, std::integer_sequence<int, I...>) {
  (int4s_k<MR, NV, I>(acc, wv, mask, x, ldx), ...);
}

template <int MR, int NV>
TESSERA_AVX2 void int4s_tile_t(const wo_tile& t) {
  __m256 tile[MR][NV], acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) tile[r][v] = acc[r][v] = _mm256_setzero_ps();
  const __m256i mask = _mm256_set1_epi32(static_cast<int32_t>(0xF0000000u));
  const int64_t bs = t.b.kp * 4;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    for (int64_t u = t.b.gp[g] / 8; u < t.b.gp[g + 1] / 8; ++u) {
      __m256i wv[NV];
      for (int v = 0; v < NV; ++v)
        wv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.b.w + v * bs + u * 32));
      int4s_unit<MR, NV>(acc, wv, mask, t.x + u * 8, t.ldx, std::make_integer_sequence<int, 8>{});
    }
    for (int v = 0; v < NV; ++v) {
      const __m256 sv = _mm256_loadu_ps(t.b.scales + v * t.b.lds + g * 8);
      for (int r = 0; r < MR; ++r) {
        tile[r][v] = _mm256_fmadd_ps(acc[r][v], sv, tile[r][v]);
        acc[r][v] = _mm256_setzero_ps();
      }
    }
  }
  wo_store<MR, NV>(t, tile);
}

template <int MR, int NV>
TESSERA_AVX2 void fp8_tile_t(const wo_tile& t) {
  __m256 tile[MR][NV], acc[k_sets<MR>][MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      tile[r][v] = _mm256_setzero_ps();
      for (int set = 0; set < k_sets<MR>; ++set) acc[set][r][v] = _mm256_setzero_ps();
    }
  const int64_t bs = t.b.kp * 8;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    for (int64_t u = t.b.gp[g] / 4; u < t.b.gp[g + 1] / 4; ++u) {
      __m256i wv[NV];
      for (int v = 0; v < NV; ++v)
        wv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.b.w + v * bs + u * 32));
      fp8_unit<MR, NV>(acc, wv, t.x + u * 4, t.ldx, std::make_integer_sequence<int, 4>{});
    }
    wo_group_end<MR, NV>(tile, acc, t.b.scales + g * 8, t.b.lds);
  }
  wo_store<MR, NV>(t, tile);
}

}  // namespace

bool q8_tile_avx2(const q8_tile& t) {
  if (t.xw != nullptr) {
    if (t.nv != 1) return false;
    switch (t.rows) {
      case 1: q8w_tile_t<1>(t); break;
      case 2: q8w_tile_t<2>(t); break;
      case 3: q8w_tile_t<3>(t); break;
      case 4: q8w_tile_t<4>(t); break;
      case 5: q8w_tile_t<5>(t); break;
      case 6: q8w_tile_t<6>(t); break;
      default: return false;
    }
    return true;
  }
  switch (t.rows * 8 + t.nv) {
    case 8 + 1: q8_tile_t<1, 1>(t); break;
    case 8 + 2: q8_tile_t<1, 2>(t); break;
    case 8 + 3: q8_tile_t<1, 3>(t); break;
    case 8 + 4: q8_tile_t<1, 4>(t); break;
    case 16 + 1: q8_tile_t<2, 1>(t); break;
    case 16 + 2: q8_tile_t<2, 2>(t); break;
    case 16 + 3: q8_tile_t<2, 3>(t); break;
    case 24 + 1: q8_tile_t<3, 1>(t); break;
    case 24 + 2: q8_tile_t<3, 2>(t); break;
    case 32 + 1: q8_tile_t<4, 1>(t); break;
    case 32 + 2: q8_tile_t<4, 2>(t); break;
    default: return false;
  }
  return true;
}

template <bool ZP>
bool int4_dispatch(const wo_tile& t) {
  switch (t.rows * 8 + t.nv) {
    case 8 + 1: int4_tile_t<1, 1, ZP>(t); break;
    case 8 + 2: int4_tile_t<1, 2, ZP>(t); break;
    case 8 + 3: int4_tile_t<1, 3, ZP>(t); break;
    case 8 + 4: int4_tile_t<1, 4, ZP>(t); break;
    case 16 + 1: int4_tile_t<2, 1, ZP>(t); break;
    case 16 + 2: int4_tile_t<2, 2, ZP>(t); break;
    case 16 + 3: int4_tile_t<2, 3, ZP>(t); break;
    case 16 + 4: int4_tile_t<2, 4, ZP>(t); break;
    case 24 + 1: int4_tile_t<3, 1, ZP>(t); break;
    case 24 + 2: int4_tile_t<3, 2, ZP>(t); break;
    case 32 + 1: int4_tile_t<4, 1, ZP>(t); break;
    case 32 + 2: int4_tile_t<4, 2, ZP>(t); break;
    default: return false;
  }
  return true;
}

bool int4s_tile_avx2(const wo_tile& t) {
  switch (t.rows * 8 + t.nv) {
    case 8 + 1: int4s_tile_t<1, 1>(t); break;
    case 8 + 2: int4s_tile_t<1, 2>(t); break;
    case 8 + 3: int4s_tile_t<1, 3>(t); break;
    case 8 + 4: int4s_tile_t<1, 4>(t); break;
    case 16 + 1: int4s_tile_t<2, 1>(t); break;
    case 16 + 2: int4s_tile_t<2, 2>(t); break;
    case 16 + 3: int4s_tile_t<2, 3>(t); break;
    case 16 + 4: int4s_tile_t<2, 4>(t); break;
    case 24 + 1: int4s_tile_t<3, 1>(t); break;
    case 24 + 2: int4s_tile_t<3, 2>(t); break;
    case 32 + 1: int4s_tile_t<4, 1>(t); break;
    case 32 + 2: int4s_tile_t<4, 2>(t); break;
    default: return false;
  }
  return true;
}

bool int4_tile_avx2(const wo_tile& t, bool has_zeros) {
  return has_zeros ? int4_dispatch<true>(t) : int4_dispatch<false>(t);
}

bool fp8_tile_avx2(const wo_tile& t) {
  switch (t.rows * 8 + t.nv) {
    case 8 + 1: fp8_tile_t<1, 1>(t); break;
    case 8 + 2: fp8_tile_t<1, 2>(t); break;
    case 8 + 3: fp8_tile_t<1, 3>(t); break;
    case 8 + 4: fp8_tile_t<1, 4>(t); break;
    case 16 + 1: fp8_tile_t<2, 1>(t); break;
    case 16 + 2: fp8_tile_t<2, 2>(t); break;
    case 16 + 3: fp8_tile_t<2, 3>(t); break;
    case 16 + 4: fp8_tile_t<2, 4>(t); break;
    case 24 + 1: fp8_tile_t<3, 1>(t); break;
    case 24 + 2: fp8_tile_t<3, 2>(t); break;
    case 32 + 1: fp8_tile_t<4, 1>(t); break;
    case 32 + 2: fp8_tile_t<4, 2>(t); break;
    default: return false;
  }
  return true;
}

TESSERA_AVX2 bool dequant_panel_avx2(float* panel, const wo_panel& w, int64_t p0, int64_t kc) {
  const bool four = w.dtype == qgemm_dtype::int4 || w.dtype == qgemm_dtype::uint4;
  const bool zp = w.dtype == qgemm_dtype::uint4;
  const int64_t unit = four ? 8 : 4;
  const int64_t bs = four ? w.b.kp * 4 : w.b.kp * 8;
  int64_t g = std::upper_bound(w.b.gp, w.b.gp + w.b.groups + 1, p0) - w.b.gp - 1;
  for (int64_t p = p0; p < p0 + kc; p += unit) {
    while (p >= w.b.gp[g + 1]) ++g;  // groups are whole units
    float* rows = panel + (p - p0) * 16;
    for (int v = 0; v < 2; ++v) {
      if (v >= w.nblocks) {
        for (int64_t i = 0; i < unit; ++i) _mm256_storeu_ps(rows + i * 16 + 8, _mm256_setzero_ps());
        continue;
      }
      const __m256 s = _mm256_loadu_ps(w.b.scales + v * w.b.lds + g * 8);
      const __m256 z = zp ? _mm256_loadu_ps(w.b.zeros + v * w.b.lds + g * 8) : _mm256_setzero_ps();
      const __m256i wv =
          _mm256_load_si256(reinterpret_cast<const __m256i*>(w.b.w + v * bs + (p / unit) * 32));
      float* dst = rows + v * 8;
      if (!four) {
        fp8_panel_unit(dst, wv, s, std::make_integer_sequence<int, 4>{});
      } else if (zp) {
        int4_panel_unit<true>(dst, wv, z, s, std::make_integer_sequence<int, 8>{});
      } else {
        int4_panel_unit<false>(dst, wv, z, s, std::make_integer_sequence<int, 8>{});
      }
    }
  }
  return true;
}

TESSERA_AVX2 bool quantize_row_avx2(int8_t* xq, const float* x, int64_t n, double sx) {
  const __m256d s = _mm256_set1_pd(sx);
  const __m256d lo = _mm256_set1_pd(-127.0);
  const __m256d hi = _mm256_set1_pd(127.0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256d a = _mm256_div_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), s);
    __m256d b = _mm256_div_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), s);
    a = _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    b = _mm256_round_pd(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    a = _mm256_min_pd(_mm256_max_pd(a, lo), hi);
    b = _mm256_min_pd(_mm256_max_pd(b, lo), hi);
    const __m128i ia = _mm256_cvtpd_epi32(a);
    const __m128i ib = _mm256_cvtpd_epi32(b);
    const __m128i w16 = _mm_packs_epi32(ia, ib);
    const __m128i w8 = _mm_packs_epi16(w16, w16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(xq + i), w8);
  }
  for (; i < n; ++i) {
    __m128d v = _mm_set_sd(static_cast<double>(x[i]) / sx);
    v = _mm_round_sd(v, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const double q = std::min(std::max(_mm_cvtsd_f64(v), -127.0), 127.0);
    xq[i] = static_cast<int8_t>(q);
  }
  return true;
}

TESSERA_AVX2 bool quantize_row16_avx2(int16_t* xq, const float* x, int64_t n, double sx) {
  const __m256d s = _mm256_set1_pd(sx);
  const __m256d lo = _mm256_set1_pd(-127.0);
  const __m256d hi = _mm256_set1_pd(127.0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256d a = _mm256_div_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), s);
    __m256d b = _mm256_div_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), s);
    a = _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    b = _mm256_round_pd(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    a = _mm256_min_pd(_mm256_max_pd(a, lo), hi);
    b = _mm256_min_pd(_mm256_max_pd(b, lo), hi);
    const __m128i w16 = _mm_packs_epi32(_mm256_cvtpd_epi32(a), _mm256_cvtpd_epi32(b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + i), w16);
  }
  for (; i < n; ++i) {
    __m128d v = _mm_set_sd(static_cast<double>(x[i]) / sx);
    v = _mm_round_sd(v, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const double q = std::min(std::max(_mm_cvtsd_f64(v), -127.0), 127.0);
    xq[i] = static_cast<int16_t>(q);
  }
  return true;
}

TESSERA_AVX2 bool maxabs_avx2(const float* x, int64_t n, float* maxabs, bool* finite) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
  __m256 bad = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask);
    const __m256 b = _mm256_and_ps(_mm256_loadu_ps(x + i + 8), abs_mask);
    // !(a < inf) catches both inf and NaN
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(b, inf, _CMP_NLT_UQ));
    m0 = _mm256_max_ps(m0, a);
    m1 = _mm256_max_ps(m1, b);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
  float m = 0.0f;
  for (int j = 0; j < 8; ++j) m = std::max(m, lanes[j]);
  bool ok = _mm256_movemask_ps(bad) == 0;
  for (; i < n; ++i) {
    float a;
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    bits &= 0x7FFFFFFFu;
    std::memcpy(&a, &bits, 4);
    if (!(a < __builtin_inff())) ok = false;
    m = std::max(m, a);
  }
  *maxabs = m;
  *finite = ok;
  return true;
}

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected (cpu_features reports generic)

namespace tessera {
namespace detail {
bool q8_tile_avx2(const q8_tile&) { return false; }
bool int4_tile_avx2(const wo_tile&, bool) { return false; }
bool int4s_tile_avx2(const wo_tile&) { return false; }
bool fp8_tile_avx2(const wo_tile&) { return false; }
bool dequant_panel_avx2(float*, const wo_panel&, int64_t, int64_t) { return false; }
bool quantize_row_avx2(int8_t*, const float*, int64_t, double) { return false; }
bool quantize_row16_avx2(int16_t*, const float*, int64_t, double) { return false; }
bool maxabs_avx2(const float*, int64_t, float*, bool*) { return false; }
}  // namespace detail
}  // namespace tessera

#endif
