// qgemm: out[M][N] = x[M][K] @ dequant(W[K][N]) for the QuantizedTensor formats of
// lib/backends/js/quant.ts, reproducing the arithmetic of its qmatmulRef. This file: prepack,
// the weight-only formats, dispatch; the int8 W8A8 driver (bit-identical to the reference) is
// qgemm_int8.cc.
//   int4 / uint4 / fp8 e4m3fn   weight-only: codes decoded in registers to f32, f32 activations
//          (bf16/f16 widened exactly), f32 FMA accumulation. M <= 4 (decode): per group
//          acc_g = sum_k x*(q - zero) then out += acc_g * scale (scale factored out of the group);
//          M > 4: panels of w = fround((q - zero) * scale), the reference's weights, are
//          dequantized once per 120 rows and fed to the f32 GEMM micro-kernel (gemm.h). Within
//          K * 2^-24 * sum|x*w| of the float64 reference; fp8 NaN codes make their column NaN.
//   int4 / uint4 with act8   W4A8 (run_w4a8): x quantized to int8 per row and weight group, codes
//          laid out pre-broadcast for vpmaddubsw (qgemm.h a8_tile), exact integer sums per group,
//          float32 epilogue: bit-identical to the reference's w4a8 for any M and thread count.
//          1x4096x4096 g32, 2 threads, native call: ~0.25-0.32 ms against ~0.52 ms weight-only;
//          through qmatmul, M 1 / 16 / 256: 94 / 115 / 215 GOP/s against 53 / 99 / 151.
//
// Prepack (once per QuantizedTensor, cached by the TS layer): columns in blocks of 8, each K
// group padded to a multiple of the unit (4 k for int8/fp8, 8 for int4) so a 32-byte load is one
// unit of k for 8 columns: [N/8][Kp/4][8][4] bytes (int8, fp8), [N/8][Kp/8][8] 32-bit words of 8
// nibbles (int4/uint4, k ascending from the low nibble). Pads are zero codes with zero
// activations, so they add exactly 0. Scales (and zero points) are [N/8][G][8]: one stream per block.
//
// Kernels (qgemm_avx2.cc; portable scalar versions below for TESSERA_SIMD=generic):
//   int4: a 32-bit lane holds 8 k of one column; signed int4 at M <= 4 decodes q * 2^28 with
//         slli + and against activations pre-scaled by 2^-28 (exact), otherwise slli + srai (srli
//         + zero point for uint4), then cvtdq2ps; fp8: slli + srai + and + mul by 2^120.
// M=1 streams the packed weights exactly once (4096x4096 int4 g32: 8 MB + 2 MB of scales),
// split over threads by column blocks. Every output element is computed by one task in a fixed
// order, so results are independent of the thread count and the task split.
// Measured (2-core Zen 3 EPYC VM, ~3.2 GHz, shared with other jobs; best of interleaved runs):
// int4 g32 GEMV 4096^2 0.46 ms = 73 GFLOP/s on 2 threads (~23 GB/s of weights + scales: DRAM
// speed; the decode bound is ~0.40 ms), fp8 GEMV ~32 GFLOP/s. Kernel-level rooflines are in the
// kernel files. fp8 weights rich in e4m3 subnormal codes decode slower: the 2^120 multiply sees
// denormal inputs.
#include "qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "gemm.h"
#include "thread_pool.h"

namespace tessera {

using detail::aligned_ptr;
using detail::alloc_aligned;
using detail::ceil_div;
using detail::fill_nan_row;
using detail::k_parallel_macs;
using detail::k_q_small_m;
using detail::make_plan;
using detail::plan;
using detail::round_up;
using detail::scratch;

namespace {

thread_local scratch<float> tls_panel;
thread_local scratch<float> tls_a_block;

int64_t group_count(const qgemm_weights& w) {
  return w.per_tensor ? 1 : ceil_div(w.k, w.group_size);
}
int64_t unit_of(qgemm_dtype d) {
  return d == qgemm_dtype::int4 || d == qgemm_dtype::uint4 ? 8 : 4;
}
bool is_int4(qgemm_dtype d) { return d == qgemm_dtype::int4 || d == qgemm_dtype::uint4; }

uint64_t sat_mul(uint64_t a, uint64_t b) {
  constexpr uint64_t big = 9007199254740993ull;  // 2^53 + 1, as args.h
  if (a == 0 || b == 0) return 0;
  if (a >= big || b >= big || a > big / b) return big;
  return std::min(a * b, big);
}

// Padded K: every group rounded up to the unit.
int64_t padded_k(const qgemm_weights& w) {
  const int64_t u = unit_of(w.dtype);
  const int64_t g = group_count(w);
  const int64_t last = w.k - (g - 1) * w.group_size;
  return (g - 1) * round_up(w.group_size, u) + round_up(last, u);
}

// e4m3fn code -> float, the value the AVX2 decode computes (0x7f/0xff give +-480; their columns
// are overwritten with NaN after the kernel).
struct fp8_table {
  float v[256];
  fp8_table() {
    for (int b = 0; b < 256; ++b) {
      const int e = (b >> 3) & 15;
      const int m = b & 7;
      const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9)
                               : std::ldexp(1.0f + m / 8.0f, e - 7);
      v[b] = (b & 0x80) ? -mag : mag;
    }
  }
};
const fp8_table& fp8_lut() {
  static const fp8_table t;
  return t;
}

}  // namespace

class qgemm_packed {
 public:
  qgemm_dtype dtype;
  int64_t k = 0, n = 0, group_size = 0, groups = 0, kp = 0, nblocks = 0, unit = 0;
  bool exact_rows = false;        // kp == k with no padding inside: x rows usable as they are
  std::vector<int64_t> gp;        // padded group starts [groups + 1]
  detail::aligned_ptr<uint8_t> w;  // packed codes
  uint64_t w_bytes = 0;
  std::vector<float> scales;      // [nblocks][groups][8], zero-padded: one stream per block
  std::vector<float> zeros;       // uint4 only, same shape
  std::vector<int64_t> nan_cols;  // fp8 columns holding a NaN code
  int64_t npad() const { return nblocks * detail::k_block; }
};

int64_t qgemm_k(const qgemm_packed& p) { return p.k; }
int64_t qgemm_n(const qgemm_packed& p) { return p.n; }
uint64_t qgemm_bytes(const qgemm_packed& p) {
  return p.w_bytes + (p.scales.size() + p.zeros.size()) * sizeof(float) +
         p.gp.size() * sizeof(int64_t);
}

std::string qgemm_check_scales(const qgemm_weights& w) {
  const int64_t ns = w.per_tensor ? 1 : group_count(w) * w.n;
  for (int64_t i = 0; i < ns; ++i)
    if (!std::isfinite(w.scales[i])) return "scale " + std::to_string(i) + " is not finite";
  if (w.dtype == qgemm_dtype::uint4) {
    for (int64_t i = 0; i < ns; ++i) {
      const float z = w.zeros[i];
      if (!(z >= 0.0f && z <= 15.0f && std::trunc(z) == z))
        return "zero point " + std::to_string(i) + " is not an integer in [0, 15]";
    }
  }
  return {};
}

uint64_t qgemm_packed_bytes(const qgemm_weights& w) {
  const uint64_t npad = static_cast<uint64_t>(round_up(w.n, detail::k_block));
  const uint64_t codes = sat_mul(npad, static_cast<uint64_t>(padded_k(w)));
  const uint64_t wb = is_int4(w.dtype) ? codes / 2 : codes;
  const uint64_t sb = sat_mul(sat_mul(static_cast<uint64_t>(group_count(w)), npad), 8);
  return std::min<uint64_t>(wb + sb, 9007199254740993ull);
}

std::shared_ptr<const qgemm_packed> qgemm_prepack(const qgemm_weights& wt) {
  auto p = std::make_shared<qgemm_packed>();
  p->dtype = wt.dtype;
  p->k = wt.k;
  p->n = wt.n;
  p->group_size = wt.group_size;
  p->groups = group_count(wt);
  p->unit = unit_of(wt.dtype);
  p->kp = padded_k(wt);
  p->nblocks = ceil_div(wt.n, detail::k_block);
  const int64_t gs = wt.group_size;
  const int64_t unit = p->unit;
  p->gp.resize(static_cast<size_t>(p->groups + 1));
  for (int64_t g = 0; g <= p->groups; ++g)
    p->gp[g] = g == p->groups ? p->kp : g * round_up(gs, unit);
  p->exact_rows = p->kp == wt.k && (p->groups == 1 || gs % unit == 0);

  const int64_t npad = p->npad();
  const size_t ns = static_cast<size_t>(p->groups * npad);
  p->scales.assign(ns, 0.0f);
  if (wt.dtype == qgemm_dtype::uint4) p->zeros.assign(ns, 0.0f);
  for (int64_t g = 0; g < p->groups; ++g)
    for (int64_t c = 0; c < wt.n; ++c) {
      const int64_t src = wt.per_tensor ? 0 : g * wt.n + c;
      const int64_t dst = ((c / 8) * p->groups + g) * 8 + c % 8;  // [block][group][8]
      p->scales[dst] = wt.scales[src];
      if (!p->zeros.empty()) p->zeros[dst] = wt.zeros[src];
    }

  const bool four = is_int4(wt.dtype);
  p->w_bytes = static_cast<uint64_t>(npad * p->kp / (four ? 2 : 1));
  p->w = alloc_aligned<uint8_t>(p->w_bytes);
  uint8_t* dst = p->w.get();
  const uint8_t* src = wt.values;
  const int64_t k = wt.k;
  const int64_t n = wt.n;
  const int64_t kp = p->kp;
  const int64_t groups = p->groups;
  const int64_t* gp = p->gp.data();
  // Tasks of 8 blocks: each reads 64 consecutive columns of a row (one cache line of int8).
  constexpr int64_t blocks_per_task = 8;
  std::vector<uint8_t> nan_flags(static_cast<size_t>(npad), 0);
  auto pack = [&](int64_t t) {
    const int64_t b_end = std::min(p->nblocks, (t + 1) * blocks_per_task);
    for (int64_t b = t * blocks_per_task; b < b_end; ++b) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t k0 = g * gs;
        const int64_t len = std::min(k, k0 + gs) - k0;
        for (int64_t pp = gp[g]; pp < gp[g + 1]; ++pp) {
          const int64_t kk = k0 + (pp - gp[g]);
          for (int c = 0; c < detail::k_block; ++c) {
            const int64_t col = b * detail::k_block + c;
            const bool real = pp - gp[g] < len && col < n;
            if (four) {
              uint32_t nib = 0;
              if (real) {
                const uint64_t e = static_cast<uint64_t>(kk) * n + col;
                nib = (src[e >> 1] >> ((e & 1) * 4)) & 0xF;
              }
              uint8_t* word = dst + ((b * (kp / 8) + pp / 8) * 8 + c) * 4;
              const int i = static_cast<int>(pp % 8);
              word[i / 2] = static_cast<uint8_t>(word[i / 2] | (nib << ((i & 1) * 4)));
            } else {
              const uint8_t v = real ? src[static_cast<uint64_t>(kk) * n + col] : 0;
              dst[b * kp * 8 + (pp / 4) * 32 + c * 4 + pp % 4] = v;
              if (wt.dtype == qgemm_dtype::fp8_e4m3fn && (v & 0x7F) == 0x7F) nan_flags[col] = 1;
            }
          }
        }
      }
    }
  };
  if (four) std::memset(dst, 0, p->w_bytes);
  const int64_t n_tasks = ceil_div(p->nblocks, blocks_per_task);
  if (static_cast<double>(k) * n > (1 << 20)) {
    parallel_for(n_tasks, pack);
  } else {
    for (int64_t t = 0; t < n_tasks; ++t) pack(t);
  }
  for (int64_t c = 0; c < n; ++c)
    if (nan_flags[c]) p->nan_cols.push_back(c);
  return p;
}

// ---- portable kernels ---------------------------------------------------------------------

namespace {

// Code of padded row p, column c (0..7) of a packed int4/uint4/fp8 block, as a float.
float code_at(const uint8_t* block, qgemm_dtype d, int64_t p, int c) {
  if (!is_int4(d)) return fp8_lut().v[block[(p / 4) * 32 + c * 4 + p % 4]];
  uint32_t word;
  std::memcpy(&word, block + ((p / 8) * 8 + c) * 4, 4);
  const int nib = static_cast<int>((word >> ((p % 8) * 4)) & 0xF);
  return static_cast<float>(d == qgemm_dtype::int4 && nib >= 8 ? nib - 16 : nib);
}

void wo_tile_generic(const detail::wo_tile& t, qgemm_dtype dtype) {
  float tile[4][32] = {};
  float acc[4][32];
  const int ncol = t.nv * detail::k_block;
  const int64_t block_bytes = is_int4(dtype) ? t.b.kp * 4 : t.b.kp * 8;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < ncol; ++c) acc[r][c] = 0.0f;
    for (int64_t p = t.b.gp[g]; p < t.b.gp[g + 1]; ++p) {
      for (int c = 0; c < ncol; ++c) {
        float wv = code_at(t.b.w + (c / 8) * block_bytes, dtype, p, c % 8);
        if (t.b.zeros) wv -= t.b.zeros[(c / 8) * t.b.lds + g * 8 + c % 8];
        for (int r = 0; r < t.rows; ++r) acc[r][c] += t.x[r * t.ldx + p] * wv;
      }
    }
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < ncol; ++c) tile[r][c] += acc[r][c] * t.b.scales[(c / 8) * t.b.lds + g * 8 + c % 8];
  }
  for (int r = 0; r < t.rows; ++r)
    for (int c = 0; c < t.cols; ++c) t.out[r * t.ldo + c] = tile[r][c];
}

// The portable W4A8 tile: int64 sums, the same float32 epilogue as a8_tile_avx2.
void a8_tile_generic(const detail::a8_tile& t, qgemm_dtype dtype) {
  float o[4][32] = {};
  int64_t acc[4][32];
  const int ncol = t.nv * detail::k_block;
  const int64_t block_bytes = t.b.kp * 4;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < ncol; ++c) acc[r][c] = 0;
    for (int64_t p = t.b.gp[g]; p < t.b.gp[g + 1]; ++p) {
      const int64_t at = (p / 8) * 64 + (p % 8 % 2) * 32 + (p % 8) / 2;  // first copy of code p
      for (int c = 0; c < ncol; ++c) {
        const auto q = static_cast<int64_t>(code_at(t.b.w + (c / 8) * block_bytes, dtype, p, c % 8));
        for (int r = 0; r < t.rows; ++r) acc[r][c] += t.xb[r * t.ldx + at] * q;
      }
    }
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < ncol; ++c) {
        const int64_t si = (c / 8) * t.b.lds + g * 8 + c % 8;
        int64_t a = acc[r][c];
        if (t.zp) a -= static_cast<int64_t>(t.b.zeros[si]) * t.sumx[r * t.ld_g + g];
        volatile float prod = static_cast<float>(a) * t.sx[r * t.ld_g + g];  // rounded apart: no FMA
        volatile float term = prod * t.b.scales[si];
        o[r][c] = o[r][c] + term;
      }
  }
  for (int r = 0; r < t.rows; ++r)
    for (int c = 0; c < t.cols; ++c) t.out[r * t.ldo + c] = o[r][c];
}

void dequant_panel_generic(float* panel, const detail::wo_panel& w, int64_t p0, int64_t kc) {
  const int64_t block_bytes = is_int4(w.dtype) ? w.b.kp * 4 : w.b.kp * 8;
  int64_t g = std::upper_bound(w.b.gp, w.b.gp + w.b.groups + 1, p0) - w.b.gp - 1;
  for (int64_t p = p0; p < p0 + kc; ++p) {
    while (p >= w.b.gp[g + 1]) ++g;
    float* row = panel + (p - p0) * 16;
    for (int c = 0; c < 16; ++c) {
      const int64_t si = (c / 8) * w.b.lds + g * 8 + c % 8;
      float q = 0.0f;
      if (c / 8 < w.nblocks) {
        q = code_at(w.b.w + (c / 8) * block_bytes, w.dtype, p, c % 8);
        if (w.b.zeros) q -= w.b.zeros[si];
        q *= w.b.scales[si];
      }
      row[c] = q;
    }
  }
}

// ---- activations --------------------------------------------------------------------------

float half_to_float(uint16_t h) {
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  const float mag = e == 31 ? (m ? std::numeric_limits<float>::quiet_NaN()
                                 : std::numeric_limits<float>::infinity())
                            : std::ldexp(static_cast<float>(e ? m | 0x400 : m), (e ? e : 1) - 25);
  return (h & 0x8000) ? -mag : mag;
}

// Scatters a logical row into the padded layout (pads zero).
template <class T>
void pad_row(T* dst, const T* src, const qgemm_packed& p) {
  for (int64_t g = 0; g < p.groups; ++g) {
    const int64_t k0 = g * p.group_size;
    const int64_t len = std::min(p.k, k0 + p.group_size) - k0;
    const int64_t w = p.gp[g + 1] - p.gp[g];
    std::memcpy(dst + p.gp[g], src + k0, static_cast<size_t>(len) * sizeof(T));
    std::memset(dst + p.gp[g] + len, 0, static_cast<size_t>(w - len) * sizeof(T));
  }
}

// ---- driver -------------------------------------------------------------------------------

constexpr int64_t k_row_chunk = 256;  // weight-only: rows prepared at once (bounds the scratch)
constexpr int64_t k_mc = 120;         // panel path: rows per task (multiple of the 6-row sliver)
constexpr int64_t k_kc = 256;         // panel path: K block (multiple of both units)

thread_local scratch<float> tls_row;  // weight-only: one converted row
thread_local scratch<float> tls_xs;   // weight-only, signed int4: x * 2^-28

// Register-tile width (blocks) for weight-only tiles of up to `rows` rows (16 ymm registers).
int wo_tile_nv(int64_t rows) { return rows <= 2 ? 4 : 2; }

detail::block_view view_at(const qgemm_packed& p, int64_t b) {
  const int64_t block_bytes = is_int4(p.dtype) ? p.kp * 4 : p.kp * 8;
  const int64_t s0 = b * p.groups * 8;
  return {p.w.get() + b * block_bytes, p.kp, p.scales.data() + s0,
          p.zeros.empty() ? nullptr : p.zeros.data() + s0, p.groups * 8, p.gp.data(), p.groups};
}

// Weight-only, few rows: each row tile streams the packed weights once, decoding in registers.
// scaled: xr holds x * 2^-28 for the signed int4 kernel (int4s_tile_avx2).
void run_wo_small(float* out, const float* xr, int64_t ldx, int64_t m0, int64_t mc,
                  const qgemm_packed& p, bool avx2, bool parallel, bool scaled) {
  const int nv = wo_tile_nv(mc);
  const plan pl = make_plan(mc, mc, p.nblocks, nv, parallel);
  const bool four = is_int4(p.dtype);
  run_tasks(parallel, pl.tasks(), [&](int64_t t) {
    const int64_t b_begin = t * pl.blocks_per_task;
    const int64_t b_end = std::min(p.nblocks, b_begin + pl.blocks_per_task);
    for (int64_t b = b_begin; b < b_end; b += nv) {
      const int nvb = static_cast<int>(std::min<int64_t>(nv, b_end - b));
      const detail::wo_tile tile{view_at(p, b), xr, ldx, out + m0 * p.n + b * 8, p.n,
                                 static_cast<int>(mc), nvb,
                                 static_cast<int>(std::min<int64_t>(nvb * 8, p.n - b * 8))};
      bool done = false;
      if (scaled) {
        done = detail::int4s_tile_avx2(tile);
      } else if (avx2) {
        done = four ? detail::int4_tile_avx2(tile, p.dtype == qgemm_dtype::uint4)
                    : detail::fp8_tile_avx2(tile);
      }
      if (!done) wo_tile_generic(tile, p.dtype);
    }
  });
}

// Weight-only, many rows: dequantize a K x 16 panel (the reference's float32 weights) once per
// task and run the f32 GEMM micro-kernel over up to 120 rows with it.
void run_wo_panel(float* out, const float* xr, int64_t ldx, int64_t m0, int64_t mc,
                  const qgemm_packed& p, bool avx2, bool parallel) {
  static const detail::gemm_kernel_info kern = detail::gemm_kernel_avx2();
  const bool use_kernel = avx2 && kern.kernel != nullptr && kern.nr == 16;
  const int mr = use_kernel ? kern.mr : 1;
  const plan pl = make_plan(mc, k_mc, p.nblocks, 2, parallel);
  run_tasks(parallel, pl.tasks(), [&](int64_t t) {
    const int64_t r_begin = (t / pl.n_col_tasks) * k_mc;
    const int64_t rows = std::min(mc, r_begin + k_mc) - r_begin;
    const int64_t b_begin = (t % pl.n_col_tasks) * pl.blocks_per_task;
    const int64_t b_end = std::min(p.nblocks, b_begin + pl.blocks_per_task);
    float* panel = tls_panel.get(static_cast<size_t>(k_kc * 16));
    float* a_block = tls_a_block.get(static_cast<size_t>(round_up(k_mc, 6) * k_kc));
    const int64_t slivers = ceil_div(rows, mr);
    for (int64_t pc = 0; pc < p.kp; pc += k_kc) {
      const int64_t kc = std::min(k_kc, p.kp - pc);
      if (use_kernel) {
        for (int64_t s = 0; s < slivers; ++s) {
          float* dst = a_block + s * kc * mr;
          const int live = static_cast<int>(std::min<int64_t>(mr, rows - s * mr));
          for (int64_t kk = 0; kk < kc; ++kk)
            for (int ii = 0; ii < mr; ++ii)
              dst[kk * mr + ii] = ii < live ? xr[(r_begin + s * mr + ii) * ldx + pc + kk] : 0.0f;
        }
      }
      for (int64_t b = b_begin; b < b_end; b += 2) {
        const detail::wo_panel wp{view_at(p, b), p.dtype,
                                  static_cast<int>(std::min<int64_t>(2, b_end - b))};
        if (!(avx2 && detail::dequant_panel_avx2(panel, wp, pc, kc)))
          dequant_panel_generic(panel, wp, pc, kc);
        const int cols = static_cast<int>(std::min<int64_t>(16, p.n - b * 8));
        float* c0 = out + (m0 + r_begin) * p.n + b * 8;
        if (use_kernel) {
          for (int64_t s = 0; s < slivers; ++s) {
            const int live = static_cast<int>(std::min<int64_t>(mr, rows - s * mr));
            kern.kernel(kc, a_block + s * kc * mr, panel, c0 + s * mr * p.n, p.n, live, cols,
                        pc > 0);
          }
          continue;
        }
        for (int64_t i = 0; i < rows; ++i) {
          float acc[16];
          float* crow = c0 + i * p.n;
          for (int c = 0; c < 16; ++c) acc[c] = pc > 0 && c < cols ? crow[c] : 0.0f;
          const float* xi = xr + (r_begin + i) * ldx + pc;
          for (int64_t kk = 0; kk < kc; ++kk) {
            const float xv = xi[kk];
            const float* wrow = panel + kk * 16;
            for (int c = 0; c < 16; ++c) acc[c] += xv * wrow[c];
          }
          for (int c = 0; c < cols; ++c) crow[c] = acc[c];
        }
      }
    }
  });
}

void run_weight_only(float* out, const void* x, qgemm_act act, int64_t m, int64_t m0,
                     int64_t mc, const qgemm_packed& p, bool avx2, bool parallel) {
  const float* xr;
  int64_t ldx;
  aligned_ptr<float> buf;
  if (act == qgemm_act::f32 && p.exact_rows) {
    xr = static_cast<const float*>(x) + m0 * p.k;
    ldx = p.k;
  } else {
    buf = alloc_aligned<float>(static_cast<size_t>(mc * p.kp));
    run_tasks(parallel, mc, [&](int64_t i) {
      float* dst = buf.get() + i * p.kp;
      if (p.exact_rows) {
        detail::load_act_row(dst, x, act, m0 + i, p.k);
        return;
      }
      float* tmp = tls_row.get(static_cast<size_t>(p.k));
      detail::load_act_row(tmp, x, act, m0 + i, p.k);
      pad_row(dst, tmp, p);
    });
    xr = buf.get();
    ldx = p.kp;
  }
  if (m <= k_q_small_m) {
    // Signed int4: the kernel wants x * 2^-28 (see int4s_tile_avx2), exact unless some nonzero
    // |x| is below 2^-98 (then x * 2^-28 would be subnormal): such rows take the srai kernel.
    if (avx2 && p.dtype == qgemm_dtype::int4) {
      float* xs = tls_xs.get(static_cast<size_t>(mc * ldx));
      bool exact = true;
      for (int64_t i = 0; i < mc * ldx; ++i) {
        const float a = std::fabs(xr[i]);
        if (a != 0.0f && a < 0x1p-98f) exact = false;
        xs[i] = xr[i] * 0x1p-28f;
      }
      if (exact) {
        run_wo_small(out, xs, ldx, m0, mc, p, avx2, parallel, true);
        return;
      }
    }
    run_wo_small(out, xr, ldx, m0, mc, p, avx2, parallel, false);
  } else {
    run_wo_panel(out, xr, ldx, m0, mc, p, avx2, parallel);
  }
}

thread_local scratch<int8_t> tls_a8;        // W4A8: the call's expanded activation codes (caller's)
thread_local scratch<int8_t> tls_a8_codes;  // W4A8: one group's codes

// W4A8 activations of row r: per weight group g, sx = fround(maxabs / 127) (0 -> 1) and codes
// xq = clamp(rne(x / sx), -127, 127) in double (lib/backends/js/quant.ts, w4a8), written into the
// a8_tile layout at dst (every unit, pads as 0) with their sum. False for a row
// holding a non-finite value (the caller overwrites its output with NaN). With avx2 the scan and the
// quantization are the W8A8 path's vector routines (same results: ~40 us -> ~3 us at K 4096).
bool quantize_a8_row(int8_t* dst, float* sx, int32_t* sumx, const void* x, qgemm_act act,
                     int64_t r, const qgemm_packed& p, bool avx2) {
  float* row = tls_row.get(static_cast<size_t>(p.k));
  detail::load_act_row(row, x, act, r, p.k);
  int8_t* codes = tls_a8_codes.get(static_cast<size_t>(p.group_size));
  for (int64_t g = 0; g < p.groups; ++g) {
    const int64_t k0 = g * p.group_size;
    const int64_t len = std::min(p.k, k0 + p.group_size) - k0;
    const float* xg = row + k0;
    float maxabs = 0.0f;
    bool finite = true;
    if (!(avx2 && detail::maxabs_avx2(xg, len, &maxabs, &finite))) {
      for (int64_t j = 0; j < len; ++j) {
        finite = finite && std::isfinite(xg[j]);
        maxabs = std::max(maxabs, std::fabs(xg[j]));
      }
    }
    if (!finite) return false;
    float s = static_cast<float>(static_cast<double>(maxabs) / 127.0);
    if (s == 0.0f) s = 1.0f;
    if (!(avx2 && detail::quantize_row_avx2(codes, xg, len, s))) {
      for (int64_t j = 0; j < len; ++j)
        codes[j] = static_cast<int8_t>(std::clamp(std::nearbyint(static_cast<double>(xg[j]) / s), -127.0, 127.0));
    }
    int32_t sum = 0;
    for (int64_t j = 0; j < len; ++j) sum += codes[j];
    // unit u of the group: [c0 c2 c4 c6] x 8 then [c1 c3 c5 c7] x 8 (padded codes are 0)
    int8_t* unit = dst + (p.gp[g] / 8) * 64;
    for (int64_t j = 0; j < len; j += 8, unit += 64) {
      int8_t c[8] = {};
      std::memcpy(c, codes + j, static_cast<size_t>(std::min<int64_t>(8, len - j)));
      const int8_t even[4] = {c[0], c[2], c[4], c[6]};
      const int8_t odd[4] = {c[1], c[3], c[5], c[7]};
      for (int lane = 0; lane < 8; ++lane) {
        std::memcpy(unit + lane * 4, even, 4);
        std::memcpy(unit + 32 + lane * 4, odd, 4);
      }
    }
    sx[g] = s;
    sumx[g] = sum;
  }
  return true;
}

// W4A8 for any M: activations quantized once (rows in parallel when many), then one parallel
// phase over column ranges; a task walks its blocks in steps of 4 and, for each, every chunk of up
// to 4 rows, so the blocks' weights (<= 64 KB) are reused from L1/L2 by all rows.
void run_w4a8(float* out, const void* x, qgemm_act act, int64_t m, const qgemm_packed& p,
              bool avx2) {
  const bool parallel = num_threads() > 1 && static_cast<double>(m) * p.k * p.n >= k_parallel_macs;
  const int64_t ldx = p.kp * 8;
  // The caller's scratch keeps the codes between calls (no page faults per decode step) up to 16 MB;
  // a larger batch gets its own buffer, freed on return.
  const size_t xb_n = static_cast<size_t>(m * ldx);
  aligned_ptr<int8_t> xb_big;
  if (xb_n > (size_t{16} << 20)) xb_big = alloc_aligned<int8_t>(xb_n);
  // no clearing: quantize_a8_row writes every unit of a good row (pads included); a bad row's codes
  // only feed an output row that is overwritten with NaN below
  int8_t* xb = xb_big ? xb_big.get() : tls_a8.get(xb_n);
  std::vector<float> sx(static_cast<size_t>(m * p.groups));
  std::vector<int32_t> sumx(static_cast<size_t>(m * p.groups));
  std::vector<uint8_t> bad(static_cast<size_t>(m), 0);
  run_tasks(parallel && m >= 8, m, [&](int64_t r) {
    bad[r] = !quantize_a8_row(xb + r * ldx, sx.data() + r * p.groups, sumx.data() + r * p.groups,
                              x, act, r, p, avx2);
  });
  const plan pl = make_plan(1, 1, p.nblocks, 4, parallel);
  run_tasks(parallel, pl.tasks(), [&](int64_t t) {
    const int64_t b_begin = t * pl.blocks_per_task;
    const int64_t b_end = std::min(p.nblocks, b_begin + pl.blocks_per_task);
    for (int64_t b0 = b_begin; b0 < b_end; b0 += 4) {
      for (int64_t r0 = 0; r0 < m; r0 += k_q_small_m) {
        const int rows = static_cast<int>(std::min<int64_t>(k_q_small_m, m - r0));
        const int nv = wo_tile_nv(rows);
        for (int64_t b = b0; b < std::min(b_end, b0 + 4); b += nv) {
          const int nvb = static_cast<int>(std::min<int64_t>(nv, b_end - b));
          const detail::a8_tile tile{view_at(p, b), xb + r0 * ldx, ldx, sx.data() + r0 * p.groups,
                                     sumx.data() + r0 * p.groups, p.groups, out + r0 * p.n + b * 8,
                                     p.n, rows, nvb,
                                     static_cast<int>(std::min<int64_t>(nvb * 8, p.n - b * 8)),
                                     p.dtype == qgemm_dtype::uint4};
          if (!(avx2 && detail::a8_tile_avx2(tile))) a8_tile_generic(tile, p.dtype);
        }
      }
    }
  });
  for (int64_t i = 0; i < m; ++i)
    if (bad[i]) detail::fill_nan_row(out + i * p.n, p.n);
}

}  // namespace

namespace detail {

void load_act_row(float* dst, const void* x, qgemm_act act, int64_t m, int64_t k) {
  if (act == qgemm_act::f32) {
    std::memcpy(dst, static_cast<const float*>(x) + m * k, static_cast<size_t>(k) * 4);
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(x) + m * k;
  if (act == qgemm_act::bf16) {
    for (int64_t i = 0; i < k; ++i) {
      const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
      std::memcpy(dst + i, &bits, 4);
    }
  } else {
    for (int64_t i = 0; i < k; ++i) dst[i] = half_to_float(src[i]);
  }
}

plan make_plan(int64_t rows, int64_t row_block, int64_t nblocks, int nv, bool parallel) {
  plan pl;
  pl.row_block = row_block;
  pl.n_row_blocks = ceil_div(rows, row_block);
  const int threads = parallel ? num_threads() : 1;
  const int64_t strips = ceil_div(nblocks, nv);
  const int64_t splits = std::clamp<int64_t>(ceil_div(8 * threads, pl.n_row_blocks), 1, strips);
  pl.blocks_per_task = ceil_div(strips, splits) * nv;
  pl.n_col_tasks = ceil_div(nblocks, pl.blocks_per_task);
  return pl;
}

void fill_nan_row(float* row, int64_t n) {
  std::fill(row, row + n, std::numeric_limits<float>::quiet_NaN());
}

}  // namespace detail

bool qgemm_takes_act8(const qgemm_packed& p) { return is_int4(p.dtype); }

void qgemm(float* out, const void* x, qgemm_act act, int64_t m, const qgemm_packed& p,
           bool act8) {
  static const bool avx2 = active_simd() == simd_level::avx2_fma;
  if (act8 && is_int4(p.dtype)) {
    run_w4a8(out, x, act, m, p, avx2);
  } else if (p.dtype == qgemm_dtype::int8) {
    const detail::q8_weights w{p.w.get(), p.scales.data(), p.gp.data(), p.k,      p.n,
                               p.kp,      p.groups,        p.group_size, p.nblocks};
    detail::q8_gemm(out, x, act, m, w, avx2);
  } else {
    for (int64_t m0 = 0; m0 < m; m0 += k_row_chunk) {
      const int64_t mc = std::min(k_row_chunk, m - m0);
      const bool parallel =
          num_threads() > 1 && static_cast<double>(mc) * p.k * p.n >= k_parallel_macs;
      run_weight_only(out, x, act, m, m0, mc, p, avx2, parallel);
    }
  }
  for (const int64_t c : p.nan_cols)
    for (int64_t i = 0; i < m; ++i) out[i * p.n + c] = std::numeric_limits<float>::quiet_NaN();
}

}  // namespace tessera
