// qgemm_avx2: AVX2+FMA weight-only kernels of qgemm (int4 / uint4 / fp8 e4m3fn); driver, layouts
// and the arithmetic in qgemm.cc, the int8 kernels in qgemm_int8_avx2.cc.
//
// Register tiles (M <= 4) keep acc[rows][nv] f32 accumulators per K group and fold the scale in
// once per group. A 32-bit lane holds 8 nibbles (8 k of one column) or 4 fp8 bytes.
//   int4 (signed), the GEMV kernel: the driver passes x' = x * 2^-28 (exact: rows holding a
//     nonzero |x| < 2^-98 take the srai kernel instead). Nibble i moved to the top of its lane and
//     masked, (w << (28 - 4i)) & 0xF0000000, is q * 2^28 as an int32; cvtdq2ps makes that exact,
//     and x' * (q * 2^28) is exactly x * q: the same FMAs and roundings as decoding q itself.
//     3.9 ALU ops per 8 MACs (slli, and, cvt, fma; nibble 7 needs no shift); an AND issues on more
//     Zen 3 pipes than the arithmetic shift it replaces: 1.12 cycles per 8 MACs in a bare loop
//     against 1.36 for slli + srai, ~6.5 MAC/cycle/core in the tile (was ~5.9).
//   uint4: srli(slli(w, 28 - 4i), 28) - zero, cvtdq2ps; int4 fallback: srai instead of srli.
//   fp8: byte j is srai(slli(w, 24 - 8j), 4) & 0x87f00000 (sign to bit 31, exponent and mantissa
//     aligned with float32's), times 2^120 to re-bias: exact for normals and subnormals alike.
// Panel dequant (M > 4) writes (q - zero) * scale rounded once, the reference's float32 weights.
//
// Roofline of the 4096x4096 g32 int4 GEMV (2-core Zen 3 VM, ~3.2 GHz under load, measured): it
// reads 8 MB of codes + 2 MB of scales. Sequential reads run at ~68 GB/s (1 thread) / ~143 GB/s
// (2) from L3, ~15.5 / ~20.5 GB/s from DRAM. The decode bound (6.5 MAC/cycle/core) is ~0.40 ms
// on 2 cores = 26 GB/s: compute-bound when the weights stay in L3, at DRAM speed when they do
// not. Measured: 1 thread 0.85-0.91 ms (was 0.92-1.0), 2 threads 0.46 ms best (~23 GB/s, ~73
// GFLOP/s); the thread pool's wake-up (~40 us) is most of the rest.
// Compiled with target attributes only; called only after cpu_features reports avx2+fma.
#include "avx2_target.h"
#include "qgemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "qgemm_avx2_tile.h"
#include <algorithm>
#include <cstring>
#include <utility>

namespace tessera {
namespace detail {

namespace {

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
  store_tile<MR, NV>(t.out, t.ldo, t.cols, tile);
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
  store_tile<MR, NV>(t.out, t.ldo, t.cols, tile);
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
  store_tile<MR, NV>(t.out, t.ldo, t.cols, tile);
}

// The tile templates as tile_dispatch functors.
template <bool ZP>
struct int4_run {
  const wo_tile& t;
  template <int MR, int NV>
  void operator()() const {
    int4_tile_t<MR, NV, ZP>(t);
  }
};
struct int4s_run {
  const wo_tile& t;
  template <int MR, int NV>
  void operator()() const {
    int4s_tile_t<MR, NV>(t);
  }
};
struct fp8_run {
  const wo_tile& t;
  template <int MR, int NV>
  void operator()() const {
    fp8_tile_t<MR, NV>(t);
  }
};

}  // namespace

bool int4s_tile_avx2(const wo_tile& t) { return tile_dispatch(t.rows, t.nv, int4s_run{t}); }

bool int4_tile_avx2(const wo_tile& t, bool has_zeros) {
  return has_zeros ? tile_dispatch(t.rows, t.nv, int4_run<true>{t})
                   : tile_dispatch(t.rows, t.nv, int4_run<false>{t});
}

bool fp8_tile_avx2(const wo_tile& t) { return tile_dispatch(t.rows, t.nv, fp8_run{t}); }

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

}  // namespace detail
}  // namespace tessera

#else  // not x86-64 GCC/Clang: never selected (cpu_features reports generic)

namespace tessera {
namespace detail {
bool int4_tile_avx2(const wo_tile&, bool) { return false; }
bool int4s_tile_avx2(const wo_tile&) { return false; }
bool fp8_tile_avx2(const wo_tile&) { return false; }
bool dequant_panel_avx2(float*, const wo_panel&, int64_t, int64_t) { return false; }
}  // namespace detail
}  // namespace tessera

#endif