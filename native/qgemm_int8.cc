// qgemm_int8: the int8 W8A8 driver of qgemm (qgemm.h), out = x @ dequant(W) for int8 weights
// quantized per channel or per K group, reproducing lib/backends/js/quant.ts qmatmulRef bit for
// bit: per row, sx = fround(maxabs/127) and xq = clamp(rne(x/sx), -127, 127) in double (a row
// with a non-finite value gives a NaN row); per K group an exact integer dot product acc_g (int32
// runs of <= 65536 k, int64 beyond); out = sum_g (acc_g * sx) * scale[g][n] in double, g
// ascending, rounded to float once. Weights come prepacked by qgemm.cc: [N/8][Kp/4][8][4] bytes.
//
//   M > 4: activations quantized to int16 straight into panels of 6 rows interleaved per k-quad
//     ([Kp/4][6][4]), then vpmaddwd tiles of 6 rows x 8 columns over all of K (exact, no
//     saturation possible; qgemm_int8_avx2.cc). One parallel phase: tasks are row blocks
//     (panels within ~192 KB of L2) x column ranges, ~32 per thread; blocks outer inside a task,
//     so a block's 8 columns of weights are reused from L1/L2 by every panel of the row block.
//     A row block is quantized by the first tasks that need it (rows claimed one at a time), so
//     quantizing overlaps the GEMM and no second fork-join is paid. Every tile streams in a slice
//     of the next block's weights (prefetch), so weights arrive from L3/DRAM as a steady stream.
//   M <= 4: the sign trick without VNNI, vpmaddubsw(|w| as u8, sign(x, w)) then vpmaddwd with
//     ones, on int8 activations; tiles of 1..4 rows x 2..4 blocks, split by columns.
// Every output element is computed by one task in a fixed order: results do not depend on the
// thread count or the task split.
//
// Roofline (2-core Zen 3 EPYC VM, ~3.2 GHz, shared with other jobs). Without VNNI both tiles
// cost 2 vector ALU ops per 16 MACs, and a vpmaddwd + vpaddd pair issues at ~0.62 cycle
// (measured: madd alone 2/cycle, add 4/cycle, the 1:1 mix ~3.2 ops/cycle), so ~26 MAC/cycle is
// the ceiling; the 6x8 tile runs 77 MAC/ns (~24.5 MAC/cycle) hot in L1, ~72 with K = 2048 (its
// 40 KB of panel + weights stream from L2). Full 2048^3 GEMM: quantizing ~3% of the time, tiles
// ~93%; 1 thread 55-69 GMAC/s, 2 threads 215-260 GOP/s (quiet runs; medians swing 10% with load).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "qgemm.h"
#include "thread_pool.h"

namespace tessera {
namespace detail {

namespace {

thread_local scratch<float> tls_act_row;  // a 16-bit activation row widened to float32

// The portable tile (TESSERA_SIMD=generic): exact int64 sums, the same double epilogue.
void q8_tile_generic(const q8_tile& t) {
  double d[6][32] = {};  // rows <= 6, nv * 8 <= 32
  int64_t acc[6][32];
  const int ncol = t.nv * k_block;
  for (int64_t g = 0; g < t.b.groups; ++g) {
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < ncol; ++c) acc[r][c] = 0;
    for (int64_t p = t.b.gp[g]; p < t.b.gp[g + 1]; ++p) {
      for (int r = 0; r < t.rows; ++r) {
        const int64_t xv = t.xw ? t.xw[(p / 4) * k_q8w_panel + r * 4 + p % 4]
                                : t.xq[r * t.ldx + p];
        if (xv == 0) continue;
        for (int c = 0; c < ncol; ++c) {
          const int8_t* wb = reinterpret_cast<const int8_t*>(t.b.w) + (c / 8) * t.b.kp * 8;
          acc[r][c] += xv * wb[(p / 4) * 32 + (c % 8) * 4 + p % 4];
        }
      }
    }
    for (int r = 0; r < t.rows; ++r)
      for (int c = 0; c < ncol; ++c) {
        const float s = t.b.scales[(c / 8) * t.b.lds + g * 8 + c % 8];
        d[r][c] += static_cast<double>(acc[r][c]) * t.sx[r] * static_cast<double>(s);
      }
  }
  for (int r = 0; r < t.rows; ++r)
    for (int c = 0; c < t.cols; ++c) t.out[r * t.ldo + c] = static_cast<float>(d[r][c]);
}

// Register-tile width (blocks) of the sign-trick tile for `rows` rows: what fits in 16 ymm.
int tile_nv(int64_t rows) { return rows <= 1 ? 4 : rows == 2 ? 3 : 2; }

// Row m of x as float32 (16-bit activations widened into tls_act_row) and its activation scale
// sx = fround(maxabs / 127) (0 -> 1). False for a row holding a non-finite value (the caller
// zeroes its codes and overwrites its output with NaN).
bool act_row(const float** row, float* sx, const void* x, qgemm_act act, int64_t m, int64_t k,
             bool avx2) {
  if (act == qgemm_act::f32) {
    *row = static_cast<const float*>(x) + m * k;
  } else {
    float* tmp = tls_act_row.get(static_cast<size_t>(k));
    load_act_row(tmp, x, act, m, k);
    *row = tmp;
  }
  float maxabs = 0.0f;
  bool finite = true;
  if (!(avx2 && maxabs_avx2(*row, k, &maxabs, &finite))) {
    for (int64_t j = 0; j < k; ++j) {
      const float a = std::fabs((*row)[j]);
      if (!std::isfinite(a)) finite = false;
      maxabs = std::max(maxabs, a);
    }
  }
  const float s = static_cast<float>(static_cast<double>(maxabs) / 127.0);
  *sx = s == 0.0f ? 1.0f : s;
  return finite;
}

// q = clamp(rne(v / sx), -127, 127), the quotient in double (the reference's arithmetic).
inline int quantize_one(float v, float sx) {
  return static_cast<int>(std::clamp(std::nearbyint(static_cast<double>(v) / sx), -127.0, 127.0));
}

// Quantizes row m of x into dst, padded like the weights (pads 0); *sx as act_row, 0 for a
// non-finite row (dst zeroed).
bool quantize_act_row(int8_t* dst, double* sx, const void* x, qgemm_act act, int64_t m,
                      const q8_weights& p, bool avx2) {
  const float* row;
  float s;
  if (!act_row(&row, &s, x, act, m, p.k, avx2)) {
    *sx = 0.0;
    std::memset(dst, 0, static_cast<size_t>(p.kp));
    return false;
  }
  *sx = s;
  for (int64_t g = 0; g < p.groups; ++g) {
    const int64_t k0 = g * p.group_size;
    const int64_t len = std::min(p.k, k0 + p.group_size) - k0;
    int8_t* d = dst + p.gp[g];
    if (!(avx2 && quantize_row_avx2(d, row + k0, len, s)))
      for (int64_t j = 0; j < len; ++j) d[j] = static_cast<int8_t>(quantize_one(row[k0 + j], s));
    std::memset(d + len, 0, static_cast<size_t>(p.gp[g + 1] - p.gp[g] - len));
  }
  return true;
}

thread_local scratch<int16_t> tls_xw;  // int8, M > 4: the call's int16 activations (caller's)

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Rows [r_begin, r_end) (r_begin a multiple of 6) x blocks [b_begin, b_end) with the int16
// kernel: 6-row x 1-block tiles, blocks outer so a block's weights stay in L1 while the panels
// of the rows' activations stream from L2. xw: panels of 6 rows, kp * 6 int16 each.
// Prefetch: every tile of a block fetches its share of the next block's weights (from L3 or
// DRAM) a line at a time across its whole run, so the weights arrive as a steady stream rather
// than as a burst of misses in each block's first tile; the region's first tile, with nothing
// fetched for it, prefetches its own weights 1 KB ahead.
void int8_w_region(float* out, const int16_t* xw, const double* sx, int64_t r_begin,
                   int64_t r_end, int64_t b_begin, int64_t b_end, const q8_weights& p,
                   bool avx2) {
  constexpr int64_t mr = k_q8w_rows;
  const int64_t block_bytes = p.kp * 8;
  const int64_t slice = ceil_div(block_bytes, ceil_div(r_end - r_begin, mr));
  const int64_t step = ceil_div(slice, std::max<int64_t>(1, p.kp / 8));  // a line per 2 quads
  for (int64_t b = b_begin; b < b_end; ++b) {
    const int cols = static_cast<int>(std::min<int64_t>(8, p.n - b * 8));
    const block_view view = p.view(b);
    for (int64_t r = r_begin, i = 0; r < r_end; r += mr, ++i) {
      // prefetches never fault: the stream may run past the weights
      const uint8_t* pf = view.w;
      int64_t ps = 0;
      if (b == b_begin && i == 0) {
        pf += 1024, ps = 64;
      } else if (b + 1 < b_end) {
        pf += block_bytes + i * slice, ps = step;
      }
      q8_tile tile{view, nullptr, xw + r * p.kp, 0, sx + r, out + r * p.n + b * 8, p.n,
                   static_cast<int>(std::min<int64_t>(mr, r_end - r)), 1, cols, pf, ps};
      if (!(avx2 && q8_tile_avx2(tile))) q8_tile_generic(tile);
    }
  }
}

// Quantizes row r straight into its slot of the int16 panels (see int8_w_region): padded k-quad
// j at dst + j * k_q8w_panel. A group's last quad is zero-filled past its end (pads < 4 k).
bool quantize_panel_row(int16_t* xw, double* sx, const void* x, qgemm_act act, int64_t r,
                        const q8_weights& p, bool avx2) {
  constexpr int64_t mr = k_q8w_rows;
  constexpr int64_t stride = k_q8w_panel;
  int16_t* dst = xw + (r / mr) * mr * p.kp + (r % mr) * 4;
  const float* row;
  float s;
  if (!act_row(&row, &s, x, act, r, p.k, avx2)) {
    *sx = 0.0;
    for (int64_t q = 0; q < p.kp / 4; ++q) std::memset(dst + q * stride, 0, 4 * sizeof(int16_t));
    return false;
  }
  *sx = s;
  for (int64_t g = 0; g < p.groups; ++g) {
    const int64_t k0 = g * p.group_size;
    const int64_t len = std::min(p.k, k0 + p.group_size) - k0;
    int16_t* d = dst + p.gp[g] / 4 * stride;
    if (avx2 && quantize_quads_avx2(d, stride, row + k0, len, s)) continue;
    for (int64_t j = 0; j < round_up(len, 4); ++j)
      d[j / 4 * stride + j % 4] = static_cast<int16_t>(j < len ? quantize_one(row[k0 + j], s) : 0);
  }
  return true;
}

// M > 4: int16 activations and the vpmaddwd tiles, in one parallel phase. Tasks are row blocks
// (int16 activations within ~192 KB of L2) x column ranges, ordered column range first so that
// concurrent tasks mostly start on different row blocks. A row block is quantized on first use:
// the tasks that need it claim its rows one at a time (an atomic counter), then wait until every
// claimed row is written. A claimed row is always finished by its claimer without waiting on
// anything, so the wait ends whatever the number of threads.
struct row_block_state {
  std::atomic<int64_t> next{0};  // next row to claim
  std::atomic<int64_t> done{0};  // rows written
};

void run_int8_wide(float* out, const void* x, qgemm_act act, int64_t m, const q8_weights& p,
                   bool avx2, bool parallel) {
  const int64_t kp = p.kp;
  const int threads = parallel ? num_threads() : 1;
  const int64_t fit = (192 * 1024 / (kp * 2)) / k_q8w_rows * k_q8w_rows;
  const int64_t row_block = std::clamp<int64_t>(fit, 4 * k_q8w_rows, 16 * k_q8w_rows);
  const int64_t n_rb = ceil_div(m, row_block);
  // About 32 tasks per thread (a task is then ~1-3% of a thread's share: little tail), a column
  // range of whole blocks each.
  const int64_t splits = std::clamp<int64_t>(ceil_div(32 * threads, n_rb), 1, p.nblocks);
  const int64_t blocks_per_task = ceil_div(p.nblocks, splits);
  const int64_t n_col = ceil_div(p.nblocks, blocks_per_task);

  // The caller's scratch keeps the buffer between calls (no page faults per call) up to 16 MB.
  const size_t xw_n = static_cast<size_t>(round_up(m, k_q8w_rows) * kp);
  aligned_ptr<int16_t> xw_big;
  if (xw_n > (size_t{8} << 20)) xw_big = alloc_aligned<int16_t>(xw_n);
  int16_t* xw = xw_big ? xw_big.get() : tls_xw.get(xw_n);
  std::vector<double> sx(static_cast<size_t>(m));
  std::vector<uint8_t> bad(static_cast<size_t>(m), 0);
  std::unique_ptr<row_block_state[]> state(new row_block_state[static_cast<size_t>(n_rb)]);

  run_tasks(parallel, n_rb * n_col, [&](int64_t t) {
    const int64_t rb = t % n_rb;
    const int64_t r0 = rb * row_block;
    const int64_t rows = std::min(m, r0 + row_block) - r0;
    row_block_state& st = state[rb];
    if (st.done.load(std::memory_order_acquire) < rows) {
      for (int64_t i; (i = st.next.fetch_add(1, std::memory_order_relaxed)) < rows;) {
        const int64_t r = r0 + i;
        bad[r] = !quantize_panel_row(xw, &sx[r], x, act, r, p, avx2);
        st.done.fetch_add(1, std::memory_order_release);
      }
      // Yield now and then: with more threads than cores the claimer may be waiting for this core.
      for (int spins = 1; st.done.load(std::memory_order_acquire) < rows; ++spins) {
        cpu_relax();
        if (spins % 256 == 0) std::this_thread::yield();
      }
    }
    const int64_t b_begin = (t / n_rb) * blocks_per_task;
    const int64_t b_end = std::min(p.nblocks, b_begin + blocks_per_task);
    int8_w_region(out, xw, sx.data(), r0, r0 + rows, b_begin, b_end, p, avx2);
  });
  for (int64_t i = 0; i < m; ++i)
    if (bad[i]) fill_nan_row(out + i * p.n, p.n);
}

// M <= 4: int8 activations and the sign-trick tiles of up to 4 rows x 2-4 blocks, split by columns.
void run_int8_small(float* out, const void* x, qgemm_act act, int64_t m, const q8_weights& p,
                    bool avx2, bool parallel) {
  const int64_t kp = p.kp;
  aligned_ptr<int8_t> xq = alloc_aligned<int8_t>(static_cast<size_t>(m * kp));
  double sx[k_q_small_m];
  bool bad[k_q_small_m];
  for (int64_t i = 0; i < m; ++i)
    bad[i] = !quantize_act_row(xq.get() + i * kp, sx + i, x, act, i, p, avx2);
  const int nv = tile_nv(m);
  const plan pl = make_plan(m, m, p.nblocks, nv, parallel);
  run_tasks(parallel, pl.tasks(), [&](int64_t t) {
    const int64_t b_begin = t * pl.blocks_per_task;
    const int64_t b_end = std::min(p.nblocks, b_begin + pl.blocks_per_task);
    for (int64_t b = b_begin; b < b_end; b += nv) {
      const int nvb = static_cast<int>(std::min<int64_t>(nv, b_end - b));
      const int cols = static_cast<int>(std::min<int64_t>(nvb * 8, p.n - b * 8));
      const q8_tile tile{p.view(b), xq.get(), nullptr, kp, sx, out + b * 8, p.n,
                         static_cast<int>(m), nvb, cols, nullptr, 0};
      if (!(avx2 && q8_tile_avx2(tile))) q8_tile_generic(tile);
    }
  });
  for (int64_t i = 0; i < m; ++i)
    if (bad[i]) fill_nan_row(out + i * p.n, p.n);
}

}  // namespace

void q8_gemm(float* out, const void* x, qgemm_act act, int64_t m, const q8_weights& p,
             bool avx2) {
  const bool parallel =
      num_threads() > 1 && static_cast<double>(m) * p.k * p.n >= k_parallel_macs;
  if (m <= k_q_small_m) {
    run_int8_small(out, x, act, m, p, avx2, parallel);
  } else {
    run_int8_wide(out, x, act, m, p, avx2, parallel);
  }
}

}  // namespace detail
}  // namespace tessera
