// qgemm_int8_avx2: AVX2 kernels of int8 W8A8 qgemm (driver and the arithmetic: qgemm_int8.cc).
// Every product is exact and no int16 intermediate can saturate; results equal the reference bit
// for bit (the double epilogue below is the reference's operation order).
//
// M > 4, the vpmaddwd tile (6 rows x 1 block of 8 columns): activations are int16, the tile's 6
// rows interleaved per k-quad in one panel [kp/4][6][4] (a single stream: six 4 KB-strided rows
// would share L1 sets). Per k-quad:
//   w = vpmovsxbw(16 weight bytes) x 2     int16, columns 0-3 and 4-7, 4 k each
//   a = vpbroadcastq(the row's 4 int16)    per row
//   c += vpmaddwd(a, w)                    int32 lanes (column, k pair): 2 exact products each
// 12 accumulators + 2 weights + broadcast + product = all 16 ymm, so the loop is asm (GCC spills
// otherwise). 2 ALU ops per 16 MACs, one of them on the 2 multiply pipes, no sign fix-up: int16
// holds both signs. Column sums are the lane pairs added (vphaddd) at the group end. Each double
// quad also prefetches one line of a caller-given stream (the next block's weights): the load
// ports have room, the ALUs do not.
// M <= 4, the sign-trick tile (rows x nv blocks, 1x4 / 2x3 / 3x2 / 4x2) on int8 activations:
//   t = vpsignb(x, w); t = vpmaddubsw(|w|, t); c += vpmaddwd(t, ones)
// |w| (<= 128) on the unsigned side and x (|x| <= 127) signed: |pair| <= 32512, no saturation,
// and a -128 weight (which the reference accepts) stays exact. 4 ALU ops per 32 MACs.
// Group epilogue in double: out += (acc * sx) * scale, the mul and add kept apart (no FMA).
//
// Roofline (2-core Zen 3 VM, ~3.2 GHz under load, measured with microbenchmarks): vpmaddwd,
// vpmaddubsw and vpsignb issue 2 per cycle, vpaddd 4, loads 2. Both tiles need 4 ALU ops per 32
// MACs, at most 32 MAC/cycle/core (410 GOP/s on 2 cores); but a 1:1 mix of vpmaddwd and vpaddd
// issues at ~0.62 cycle per pair (~3.2 ops/cycle, dependent or not; with 2 adds per multiply the
// core reaches 4), so ~26 MAC/cycle is the real ceiling. The vpmaddwd tile runs 22.5-25
// MAC/cycle hot in L1 (77 MAC/ns; the sign-trick 4x2 tile 22). Tried and slower: activations
// stored pre-broadcast (32-byte loads or vpmaddwd memory operands instead of vpbroadcastq),
// weights pre-widened to int16 (no vpmovsxbw: no gain, the multiply/add mix is the limit).
// In the full 2048^3 GEMM on 1 thread: 147 GOP/s = 22.9 MAC/cycle (was 126 = 19.7); 2 threads
// 222-230 GOP/s against 178-187 for the previous kernels in the same (shared, noisy) runs, ~1.2x;
// 16x4096^2 272 GOP/s, 128x4096^2 263 (quiet runs).
// Compiled with target attributes only; called only after cpu_features reports avx2+fma.
#include "avx2_target.h"
#include "qgemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <algorithm>
#include <cstring>

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
#define TESSERA_Q8W_LOOP(ROWS)                                                                     \
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
      "1:\n\t"                                                                                   \
      "prefetcht0 (%[pf])\n\t"                                                                    \
      "add %[ps], %[pf]\n\t" TESSERA_Q8W_QUAD("0", "0", "8", "16", "24", "32", "40", ROWS)          \
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
      : [w] "+r"(w), [x] "+r"(x), [n2] "+r"(n2), [pf] "+r"(pf)                                   \
      : [odd] "r"(odd), [o] "r"(acc), [ps] "r"(ps)                                               \
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc")

// acc[2r + h][8] = int32 lanes of row r over nq >= 1 quads from x (a k-quad interleaved panel:
// [quad][6 rows][4] int16) and w (one block). Each double quad also prefetches the line at pf
// and advances pf by ps (see q8_tile::pf).
template <int MR>
TESSERA_AVX2_INLINE void q8w_run(int32_t (&acc)[12][8], const int16_t* x, const int8_t* w,
                                 int64_t nq, const uint8_t*& pf, int64_t ps) {
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
  const uint8_t* pf = t.pf;
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
        q8w_run<MR>(acc, t.xw + p0 / 4 * k_q8w_panel, w8 + p0 * 8, nq, pf, t.pf_step);
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
      q8w_run<MR>(acc, t.xw + (p0 / 4 + q0) * k_q8w_panel, w8 + (p0 + q0 * 4) * 8, n, pf,
                  t.pf_step);
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

// Eight activations x[0..8) / sx, rounded to nearest even in double and clamped to [-127, 127], as
// eight int16 lanes (the reference's arithmetic: the quotient is formed in double).
TESSERA_AVX2_INLINE __m128i quantize8(const float* x, __m256d s) {
  const __m256d lo = _mm256_set1_pd(-127.0);
  const __m256d hi = _mm256_set1_pd(127.0);
  const __m256 v = _mm256_loadu_ps(x);
  __m256d a = _mm256_div_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), s);
  __m256d b = _mm256_div_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), s);
  a = _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  b = _mm256_round_pd(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  a = _mm256_min_pd(_mm256_max_pd(a, lo), hi);
  b = _mm256_min_pd(_mm256_max_pd(b, lo), hi);
  return _mm_packs_epi32(_mm256_cvtpd_epi32(a), _mm256_cvtpd_epi32(b));
}

// The same for one activation (the row's tail).
TESSERA_AVX2_INLINE double quantize1(float x, double sx) {
  __m128d v = _mm_set_sd(static_cast<double>(x) / sx);
  v = _mm_round_sd(v, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return std::min(std::max(_mm_cvtsd_f64(v), -127.0), 127.0);
}

TESSERA_AVX2 bool quantize_row_avx2(int8_t* xq, const float* x, int64_t n, double sx) {
  const __m256d s = _mm256_set1_pd(sx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i w16 = quantize8(x + i, s);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(xq + i), _mm_packs_epi16(w16, w16));
  }
  for (; i < n; ++i) xq[i] = static_cast<int8_t>(quantize1(x[i], sx));
  return true;
}

TESSERA_AVX2 bool quantize_quads_avx2(int16_t* dst, int64_t stride, const float* x, int64_t n,
                                      double sx) {
  const __m256d s = _mm256_set1_pd(sx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8, dst += 2 * stride) {
    const __m128i v = quantize8(x + i, s);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), v);
    _mm_storeh_pd(reinterpret_cast<double*>(dst + stride), _mm_castsi128_pd(v));
  }
  for (; i < n; i += 4, dst += stride)
    for (int j = 0; j < 4; ++j)
      dst[j] = static_cast<int16_t>(i + j < n ? quantize1(x[i + j], sx) : 0.0);
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
bool quantize_row_avx2(int8_t*, const float*, int64_t, double) { return false; }
bool quantize_quads_avx2(int16_t*, int64_t, const float*, int64_t, double) { return false; }
bool maxabs_avx2(const float*, int64_t, float*, bool*) { return false; }
}  // namespace detail
}  // namespace tessera

#endif
