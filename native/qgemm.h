// qgemm: low-precision matmul out[M][N] = x[M][K] @ dequant(W[K][N]) on prepacked weights.
// Formats and the arithmetic to reproduce: lib/backends/js/quant.ts (qmatmulRef). Algorithm,
// layouts and tuning notes: qgemm.cc (prepack, weight-only), qgemm_int8.cc (int8 W8A8); AVX2
// kernels: qgemm_int8_avx2.cc, qgemm_avx2.cc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "scratch.h"
#include "thread_pool.h"

namespace tessera {

enum class qgemm_dtype { int8, int4, uint4, fp8_e4m3fn };
enum class qgemm_act { f32, bf16, f16 };  // activation storage: float32, or raw 16-bit bits

// The parts of a QuantizedTensor, as the reference stores them (dims already range-checked).
struct qgemm_weights {
  qgemm_dtype dtype;
  int64_t k, n, group_size;  // 1 <= group_size <= k; per_tensor implies group_size == k
  bool per_tensor;
  const uint8_t* values;  // int8 / fp8: [K*N] bytes; int4 / uint4: ceil(K*N/2) packed nibbles
  const float* scales;    // [ceil(K/group_size)][N], or [1] per tensor
  const float* zeros;     // uint4: shaped like scales; else nullptr
};

// Empty if the scales (and zero points) are usable, else why not: scales must be finite, zero
// points integers in [0, 15].
std::string qgemm_check_scales(const qgemm_weights& w);

// Bytes qgemm_prepack would allocate (saturating like args.h size_mul), for the caller's size check.
uint64_t qgemm_packed_bytes(const qgemm_weights& w);

class qgemm_packed;  // opaque: weights repacked once into the kernels' layout (qgemm.cc)

std::shared_ptr<const qgemm_packed> qgemm_prepack(const qgemm_weights& w);
int64_t qgemm_k(const qgemm_packed& p);
int64_t qgemm_n(const qgemm_packed& p);
uint64_t qgemm_bytes(const qgemm_packed& p);  // memory held, for GC accounting

// out[m][n] (row stride N) = qmatmul of x [M][K] (row stride K) with the packed weights. out is
// overwritten, never read. x points at float32 or raw bf16/f16 bits as `act` says.
// act8 (int4 / uint4 weights only, see qgemm_takes_act8): W4A8, activations quantized to int8 per
// row and weight group (lib/backends/js/quant.ts, w4a8) and exact integer dot products.
void qgemm(float* out, const void* x, qgemm_act act, int64_t m, const qgemm_packed& p,
           bool act8 = false);
// Whether the weights are int4 / uint4 (the formats with a W4A8 form); int8 weights always take
// int8 activations (W8A8), fp8 never.
bool qgemm_takes_act8(const qgemm_packed& p);

namespace detail {

// ---- kernel interface shared by qgemm.cc (driver, generic kernels) and qgemm_avx2.cc ----
// Packed weights: columns in blocks of 8; along K, groups padded to a multiple of the unit
// (4 for int8/fp8, 8 for int4/uint4) and concatenated: padded row p of group g is
// gp[g] <= p < gp[g+1]. Block b holds [kp/unit][8 columns][unit k]: one 32-bit lane per
// column per unit (4 bytes, or 8 nibbles with k ascending from the low nibble), so a 32-byte
// load is one unit of k for 8 columns. Block stride = kp * 8 bytes (int8/fp8), kp * 4 (int4).

constexpr int k_block = 8;  // columns per block

// The packed weights from block b0 on.
struct block_view {
  const uint8_t* w;     // block b0
  int64_t kp;           // padded K; block stride kp * 8 bytes (int8/fp8), kp * 4 (int4/uint4)
  const float* scales;  // [block][group][8] from b0: block v, group g, column c at
  const float* zeros;   //   scales[v * lds + g * 8 + c]; uint4 zero points alike, else nullptr
  int64_t lds;
  const int64_t* gp;    // padded group starts [groups + 1]
  int64_t groups;
};

// One tile: `rows` (1..4) rows x `nv` blocks, over all groups; out[r][c] for c < cols stored.
struct q8_tile {        // int8 W8A8
  block_view b;
  const int8_t* xq;     // rows [rows][ldx] of quantized activations, padded like the weights, or
  const int16_t* xw;    //   the same codes as int16 in a panel [kp/4][6][4] (row r, padded k p at
                        //   (p/4)*24 + r*4 + p%4; the vpmaddwd kernel: nv == 1, rows <= 6)
  int64_t ldx;          // xq only
  const double* sx;     // per-row activation scale
  float* out;
  int64_t ldo;
  int rows, nv, cols;
  const uint8_t* pf;    // int16 kernel: a prefetch stream, one line per two k-quads at pf,
  int64_t pf_step;      //   pf + pf_step, ... (weights on their way from L3 / DRAM)
};

struct wo_tile {        // weight-only int4 / uint4 / fp8 (dequantized in registers)
  block_view b;
  const float* x;       // rows [rows][ldx], padded like the weights (pad entries are 0)
  int64_t ldx;
  float* out;
  int64_t ldo;
  int rows, nv, cols;
};

// Dequantizes padded rows [p0, p0 + kc) of blocks b0, b0+1 (16 columns) into panel[kc][16]:
// w = (q - zero) * scale exactly as the reference rounds it; columns past the last block are 0.
struct wo_panel {
  block_view b;
  qgemm_dtype dtype;
  int nblocks;          // 1 or 2
};

// W4A8: `rows` (1..4) rows x `nv` blocks of int4 / uint4 weights against int8 activations. Per
// unit of 8 k a row's codes sit in 64 bytes, [x0 x2 x4 x6] repeated 8 times then [x1 x3 x5 x7]
// repeated 8 times (the even and odd k of a lane's 8 nibbles, for vpmaddubsw). Per group g:
// acc = sum_k xq * (code - zero) exactly (signed int4: zero 0), then in float32, each operation
// rounded, g ascending: out = out + (float(acc) * sx[g]) * scale[g][c].
struct a8_tile {
  block_view b;
  const int8_t* xb;     // rows [rows][ldx] in the layout above, padded like the weights (pads 0)
  int64_t ldx;          // bytes per row: kp * 8
  const float* sx;      // [rows][ld_g]: activation scale of each group
  const int32_t* sumx;  // [rows][ld_g]: sum of the group's activation codes
  int64_t ld_g;
  float* out;
  int64_t ldo;
  int rows, nv, cols;
  bool zp;              // uint4 (zero points in b.zeros), else signed int4
};
constexpr int64_t k_a8_max_units = 1 << 17;  // units per group the AVX2 tile takes (int32 sums)

// Longest run of k-quads one int32 accumulator may take: 127*128*4*16384 < 2^31.
constexpr int64_t k_q8_max_quads = 16384;
constexpr int64_t k_q8w_rows = 6;                   // rows of an int16 activation panel
constexpr int64_t k_q8w_panel = 4 * k_q8w_rows;     // int16 per k-quad of a panel

// Runs f.template operator()<MR, NV>() for the register tiles of the weight-only and W4A8 kernels:
// 1-2 rows x 1-4 blocks, 3-4 rows x 1-2 blocks. False for any other shape.
template <class F>
bool tile_dispatch(int rows, int nv, const F& f) {
  switch (rows * 8 + nv) {
    case 8 + 1: f.template operator()<1, 1>(); break;
    case 8 + 2: f.template operator()<1, 2>(); break;
    case 8 + 3: f.template operator()<1, 3>(); break;
    case 8 + 4: f.template operator()<1, 4>(); break;
    case 16 + 1: f.template operator()<2, 1>(); break;
    case 16 + 2: f.template operator()<2, 2>(); break;
    case 16 + 3: f.template operator()<2, 3>(); break;
    case 16 + 4: f.template operator()<2, 4>(); break;
    case 24 + 1: f.template operator()<3, 1>(); break;
    case 24 + 2: f.template operator()<3, 2>(); break;
    case 32 + 1: f.template operator()<4, 1>(); break;
    case 32 + 2: f.template operator()<4, 2>(); break;
    default: return false;
  }
  return true;
}

// AVX2 kernels (int8: qgemm_int8_avx2.cc, weight-only: qgemm_avx2.cc); return false when not
// built for x86-64 (never called then).
bool q8_tile_avx2(const q8_tile& t);
bool int4_tile_avx2(const wo_tile& t, bool has_zeros);
// Signed int4 with t.x holding x * 2^-28 (exact: no nonzero |x| below 2^-98); same results.
bool int4s_tile_avx2(const wo_tile& t);
bool fp8_tile_avx2(const wo_tile& t);
bool a8_tile_avx2(const a8_tile& t);
bool dequant_panel_avx2(float* panel, const wo_panel& w, int64_t p0, int64_t kc);
// Quantizes one row: xq[k] = clamp(rne(x[k] / sx), -127, 127) computed in double.
bool quantize_row_avx2(int8_t* xq, const float* x, int64_t n, double sx);
// The same as int16 into k-quads: quad j (4 codes) at dst + j * stride, the last zero-filled.
bool quantize_quads_avx2(int16_t* dst, int64_t stride, const float* x, int64_t n, double sx);
// max |x[k]| over n floats, and whether any is non-finite.
bool maxabs_avx2(const float* x, int64_t n, float* maxabs, bool* finite);

// ---- driver internals shared by qgemm.cc (prepack, weight-only) and qgemm_int8.cc (W8A8) ----

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

constexpr int64_t k_q_small_m = 4;           // M <= this: register tiles over the whole M
constexpr double k_parallel_macs = 1 << 20;  // below this many MACs a call stays on one thread

// Tasks: row blocks x ranges of column blocks (a multiple of nv blocks each), about 8 per
// thread, so one preempted or slower thread holds up little of the work.
struct plan {
  int64_t row_block, n_row_blocks, blocks_per_task, n_col_tasks;
  int64_t tasks() const { return n_row_blocks * n_col_tasks; }
};
plan make_plan(int64_t rows, int64_t row_block, int64_t nblocks, int nv, bool parallel);

// Row m of x ([M][k], float32 or raw 16-bit bits as act says) as float32 into dst[0, k).
void load_act_row(float* dst, const void* x, qgemm_act act, int64_t m, int64_t k);
void fill_nan_row(float* row, int64_t n);

// Packed int8 weights as the W8A8 driver sees them (layout above).
struct q8_weights {
  const uint8_t* w;
  const float* scales;  // [nblocks][groups][8]
  const int64_t* gp;
  int64_t k, n, kp, groups, group_size, nblocks;
  block_view view(int64_t b) const {
    return {w + b * kp * 8, kp, scales + b * groups * 8, nullptr, groups * 8, gp, groups};
  }
};

// out = qmatmul(x, int8 weights) for any M (qgemm_int8.cc); avx2: the AVX2 kernels may run.
void q8_gemm(float* out, const void* x, qgemm_act act, int64_t m, const q8_weights& w, bool avx2);

}  // namespace detail

}  // namespace tessera
