// spmm: out [M, N] = A [M, K] @ B [K, N], A sparse (CSR or 2:4), B dense row-major, f32.
//
// CSR: out row m = sum over the stored entries p of row m, in order (increasing
// column), of values[p] * B row colIdx[p]. The row kernel broadcasts the value and
// FMAs the B row slice into a register tile of up to 64 columns (8 ymm
// accumulators); wider N loops over 64-column tiles, tile-outer so a B panel
// [K, 64] (1 MB at K = 4096) stays in L2 across the rows of a task. Each stored
// entry is checked as it is read (0 <= col < K, strictly increasing): the check is
// one fused compare per entry, cheaper than a second pass over colIdx, and it makes
// the kernel memory-safe whatever the arrays hold, even if JS writes them while an
// async call runs. rowPtr is checked in full at the boundary (O(M), it also drives
// the partition) and again per row in the kernel.
// Load balance: rows have very different lengths, so row chunks are cut where the
// prefix cost rowPtr[m] + 2m (entries + per-row overhead) crosses equal shares;
// 8 chunks per thread, claimed dynamically. With few rows the column tiles are
// split over tasks as well.
//
// 2:4: per row, group g keeps two values at k = 4g + i0, 4g + i1 (meta nibble), so
// the row kernel is the CSR one with implicit indices: half the FLOPs and half the
// weight bytes of a dense row. Unlike CSR, every row touches half of all B rows,
// so B would be streamed from L3 once per row of A; instead K is blocked: a block
// of B [KC, 64] <= 24 KB is copied into an aligned per-thread buffer (contiguous
// 256-byte rows) and stays in L1 while up to 256 rows of the task use it, and the
// output tile is stored and reloaded between K blocks (exact: the accumulator is f32
// either way). The values/meta of the row two ahead are
// prefetched (64 strided streams defeat the hardware prefetcher). Padded
// positions (k >= K, last group) are skipped. meta is validated per task before
// its rows run (nibbles i0 < i1, the unused high nibble of an odd row 0, zeros at
// padded positions); the kernels stay memory-safe for any nibble. Row chunks of
// >= 16 rows, equal cost.
//
// Numerics: f32 accumulation in increasing k per output element, one task per
// output element, so results are bit-identical for any thread count; structural
// zeros are never multiplied (an Inf/NaN in B meets only stored entries).
// Tolerance vs the float64 reference: ||out-ref||/||ref|| ~1e-6 relative.
// The AVX2 path uses FMA, the portable path separate multiply and add (GCC
// vectorises it with baseline SSE2), so the two paths differ in the last bits.
//
// Roofline (Zen3 VM, 2 vCPUs, 4096x4096 @ 4096x64, measured in one run against our
// dense GEMM at ~50-60 GFLOP/s): CSR at 95% sparsity is 107 MFLOP over random B
// rows, 8 loads + 8 FMAs per entry, L2/L3-latency bound: ~20-25 GFLOP/s, 7-10x the
// dense GEMM. 2:4 is 1.07 GFLOP, 9 loads per 8 FMAs from L1: ~35-45 GFLOP/s (85%
// of the dense GEMM's rate with B in L1, ~70% at K = 4096), 1.4-1.5x the dense GEMM.
#include "spmm.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "scratch.h"
#include "thread_pool.h"

namespace tessera {

namespace {

using detail::k_spmm_tile_n;
using detail::load_once;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr double k_parallel_flops = 1 << 20;  // below: one task on the calling thread
// 2:4 blocking (measured on Zen3, 4096x4096 @ 4096x64; 16 KB and 32 KB blocks were
// 5-10% slower): a B block [KC, tile] of <= 24 KB, staged per task, is shared by up to
// 256 rows of A (their output tile, 64 KB, stays in L2 across the K blocks). Useful
// GFLOP/s at 4096x4096 @ 4096x64, builds interleaved in one process, 1 / 2 threads:
// unstaged 64-row blocks 39-41 / 72-78; staged, 64 rows 48-49 / 97-100, 128 rows
// 51-52 / 99-105, 256 rows 52-56 / 99-108, all the task's rows 43-44 / 103-109.
constexpr int64_t k_l1_block_bytes = 24576;
constexpr int64_t k_rows_24 = 256;

thread_local detail::scratch<float> tls_b_block;  // a task's staged 2:4 B block

// CSR reads B rows in place. B rows straight from JS memory are often 16 bytes off a 32-byte
// boundary, and then every other 32-byte load spans two cache lines (4096x4096 @ 4096x64 at 95%
// sparsity: 1.96-2.22 vs 1.63 ms by the alignment of B alone): such a B (rows of whole vectors,
// n % 8 == 0) is copied once per call into aligned memory, in parallel, ~1 MB in 50-100 us.
// Copies up to 16 MB stay in a per-thread buffer between calls (no page faults); beyond 64 MB
// B is used as it is.
thread_local detail::scratch<float> tls_b_copy;
constexpr uint64_t k_b_copy_keep = uint64_t{16} << 20;
constexpr uint64_t k_b_copy_max = uint64_t{64} << 20;

const float* aligned_b(const float* b, int64_t k, int64_t n, bool parallel,
                       detail::aligned_ptr<float>& big) {
  const uint64_t count = static_cast<uint64_t>(k) * static_cast<uint64_t>(n);
  if (reinterpret_cast<uintptr_t>(b) % 32 == 0 || n % 8 != 0 || count * 4 > k_b_copy_max) return b;
  float* dst = count * 4 <= k_b_copy_keep ? tls_b_copy.get(count)
                                          : (big = detail::alloc_aligned<float>(count)).get();
  constexpr int64_t k_rows_per_task = 256;
  run_tasks(parallel, ceil_div(k, k_rows_per_task), [&](int64_t t) {
    const int64_t r0 = t * k_rows_per_task;
    const int64_t r1 = std::min(k, r0 + k_rows_per_task);
    std::copy(b + r0 * n, b + r1 * n, dst + r0 * n);
  });
  return dst;
}

// ---- portable kernels -----------------------------------------------------------

void csr_rows_generic(float* out, const spmm_csr_f32_args& a, int64_t m0, int64_t m1, int64_t j0,
                      int width) {
  const float* b = a.b + j0;
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t p0 = load_once(a.row_ptr + m);
    const int64_t p1 = load_once(a.row_ptr + m + 1);
    if (p0 < 0 || p1 < p0 || p1 > a.nnz) detail::throw_bad_row(a, m, p0, p1);
    float acc[k_spmm_tile_n] = {};
    int64_t prev = -1;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = load_once(a.col_idx + p);
      if (c <= prev || c >= a.k) detail::throw_bad_column(a, m, p, c);
      prev = c;
      const float v = a.values[p];
      const float* br = b + c * a.n;
      for (int j = 0; j < width; ++j) acc[j] += v * br[j];
    }
    float* o = out + m * a.n + j0;
    for (int j = 0; j < width; ++j) o[j] = acc[j];
  }
}

void rows_24_generic(float* out, const spmm_24_f32_args& a, const float* bb, int64_t ldb,
                     int64_t m0, int64_t m1, int64_t g0, int64_t g1, int64_t j0, int width,
                     bool first) {
  const int64_t groups = ceil_div(a.k, 4);
  const int64_t meta_stride = ceil_div(groups, 2);
  for (int64_t m = m0; m < m1; ++m) {
    const float* vr = a.values + m * 2 * groups;
    const uint8_t* mr = a.meta + m * meta_stride;
    float* o = out + m * a.n + j0;
    float acc[k_spmm_tile_n];
    for (int j = 0; j < width; ++j) acc[j] = first ? 0.0f : o[j];
    for (int64_t g = g0; g < g1; ++g) {
      const int nib = (mr[g >> 1] >> ((g & 1) * 4)) & 15;
      const int64_t kk[2] = {4 * g + (nib & 3), 4 * g + (nib >> 2)};
      for (int s = 0; s < 2; ++s) {
        if (kk[s] >= a.k) continue;  // padding of the last group
        const float v = vr[2 * g + s];
        const float* br = bb + (kk[s] - 4 * g0) * ldb;
        for (int j = 0; j < width; ++j) acc[j] += v * br[j];
      }
    }
    for (int j = 0; j < width; ++j) o[j] = acc[j];
  }
}

detail::spmm_kernels select_kernels() {
  if (active_simd() == simd_level::avx2_fma) {
    const detail::spmm_kernels k = detail::spmm_kernels_avx2();
    if (k.csr_rows != nullptr) return k;
  }
  return {&csr_rows_generic, &rows_24_generic};
}

const detail::spmm_kernels& kernels() {
  static const detail::spmm_kernels k = select_kernels();
  return k;
}

// Column tile t of n columns: [t * 64, min(n, t * 64 + 64)).
inline int tile_width(int64_t n, int64_t t) {
  return static_cast<int>(std::min<int64_t>(k_spmm_tile_n, n - t * k_spmm_tile_n));
}

// ---- 2:4 meta validation --------------------------------------------------------

std::string format_float(float v) {
  char buf[48];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

// A meta nibble is valid when i0 = nib & 3 < i1 = nib >> 2.
constexpr bool valid_nibble(int nib) { return (nib & 3) < (nib >> 2); }

// valid_byte[b]: both nibbles of meta byte b valid (one table load per two groups).
struct byte_table {
  bool ok[256];
  constexpr byte_table() : ok() {
    for (int b = 0; b < 256; ++b) ok[b] = valid_nibble(b & 15) && valid_nibble(b >> 4);
  }
};
constexpr byte_table k_valid_byte{};

[[noreturn]] void throw_bad_meta(int64_t index, int byte, int64_t row, int64_t group, bool lone) {
  const std::string head = "meta[" + std::to_string(index) + "] = " + std::to_string(byte) + ": ";
  if (lone) throw spmm_format_error(head + "the unused high nibble of row " + std::to_string(row) + " is not 0");
  const int nib = (byte >> ((group & 1) * 4)) & 15;
  throw spmm_format_error(head + "row " + std::to_string(row) + " group " + std::to_string(group) +
                          " has positions " + std::to_string(nib & 3) + ", " +
                          std::to_string(nib >> 2) + " (must be increasing)");
}

void check_meta_rows(const spmm_24_f32_args& a, int64_t m0, int64_t m1) {
  const int64_t groups = ceil_div(a.k, 4);
  const int64_t stride = ceil_div(groups, 2);
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* mr = a.meta + m * stride;
    const int64_t pairs = groups / 2;  // bytes holding two groups
    for (int64_t j = 0; j < pairs; ++j) {
      const int byte = load_once(mr + j);
      if (k_valid_byte.ok[byte]) continue;
      if (!valid_nibble(byte & 15)) throw_bad_meta(m * stride + j, byte, m, 2 * j, false);
      throw_bad_meta(m * stride + j, byte, m, 2 * j + 1, false);
    }
    if (groups % 2 != 0) {  // odd G: the last byte holds one group, its high nibble unused
      const int byte = load_once(mr + pairs);
      if (!valid_nibble(byte & 15)) throw_bad_meta(m * stride + pairs, byte, m, 2 * pairs, false);
      if ((byte >> 4) != 0) throw_bad_meta(m * stride + pairs, byte, m, 2 * pairs + 1, true);
    }
    if (a.k % 4 != 0) {  // kept slots at padded positions must hold 0
      const int64_t g = groups - 1;
      const int nib = (load_once(mr + (g >> 1)) >> ((g & 1) * 4)) & 15;
      const int pos[2] = {nib & 3, nib >> 2};
      for (int s = 0; s < 2; ++s) {
        const float v = a.values[m * 2 * groups + 2 * g + s];
        if (4 * g + pos[s] >= a.k && v != 0.0f)
          throw spmm_format_error("values[" + std::to_string(m * 2 * groups + 2 * g + s) +
                                  "] = " + format_float(v) + " sits at padded position " +
                                  std::to_string(4 * g + pos[s]) + " >= K = " +
                                  std::to_string(a.k) + " (row " + std::to_string(m) +
                                  "), must be 0");
      }
    }
  }
}

}  // namespace

namespace detail {

void throw_bad_row(const spmm_csr_f32_args& a, int64_t row, int64_t p0, int64_t p1) {
  throw spmm_format_error("rowPtr[" + std::to_string(row) + "] = " + std::to_string(p0) +
                          ", rowPtr[" + std::to_string(row + 1) + "] = " + std::to_string(p1) +
                          ": not a range inside [0, nnz = " + std::to_string(a.nnz) + "]");
}

void throw_bad_column(const spmm_csr_f32_args& a, int64_t row, int64_t p, int64_t col) {
  if (col < 0 || col >= a.k)
    throw spmm_format_error("colIdx[" + std::to_string(p) + "] = " + std::to_string(col) +
                            " is outside [0, K = " + std::to_string(a.k) + ") (row " +
                            std::to_string(row) + ")");
  throw spmm_format_error("colIdx[" + std::to_string(p) + "] = " + std::to_string(col) +
                          ": columns of row " + std::to_string(row) +
                          " are not strictly increasing");
}

}  // namespace detail

std::string csr_row_ptr_error(const int32_t* row_ptr, int64_t m, int64_t nnz) {
  if (row_ptr[0] != 0) return "rowPtr[0] = " + std::to_string(row_ptr[0]) + ", expected 0";
  for (int64_t i = 0; i < m; ++i) {
    if (row_ptr[i + 1] < row_ptr[i])
      return "rowPtr decreases at row " + std::to_string(i) + ": rowPtr[" + std::to_string(i) +
             "] = " + std::to_string(row_ptr[i]) + " > rowPtr[" + std::to_string(i + 1) +
             "] = " + std::to_string(row_ptr[i + 1]);
  }
  if (row_ptr[m] != nnz)
    return "rowPtr[M] = rowPtr[" + std::to_string(m) + "] = " + std::to_string(row_ptr[m]) +
           ", expected nnz = " + std::to_string(nnz);
  return "";
}

void spmm_csr_f32(float* out, const spmm_csr_f32_args& args) {
  const detail::spmm_kernels& kern = kernels();
  const int threads = num_threads();
  const double flops =
      2.0 * static_cast<double>(args.nnz) * args.n + static_cast<double>(args.m) * args.n;
  const bool parallel = threads > 1 && flops >= k_parallel_flops;
  detail::aligned_ptr<float> b_copy;
  spmm_csr_f32_args a = args;
  a.b = aligned_b(args.b, args.k, args.n, parallel, b_copy);
  const int64_t n_tiles = ceil_div(a.n, k_spmm_tile_n);

  // Row chunks of equal cost rowPtr[m] + 2m; boundaries from a binary search on
  // that (monotone) prefix. A rowPtr changed by JS since the boundary check can
  // only give uneven chunks: the boundaries are forced monotone, every row is
  // covered once, and the kernel re-checks each row it reads.
  const int64_t n_chunks = parallel ? std::min<int64_t>(a.m, 8 * threads) : 1;
  std::vector<int64_t> bounds(static_cast<size_t>(n_chunks + 1), 0);
  bounds[n_chunks] = a.m;
  if (n_chunks > 1) {
    auto cost = [&](int64_t m) { return static_cast<double>(load_once(a.row_ptr + m)) + 2.0 * m; };
    const double total = cost(a.m);
    for (int64_t c = 1; c < n_chunks; ++c) {
      const double target = total * static_cast<double>(c) / static_cast<double>(n_chunks);
      int64_t lo = bounds[c - 1];
      int64_t hi = a.m;
      while (lo < hi) {  // first m with cost(m) >= target
        const int64_t mid = lo + (hi - lo) / 2;
        if (cost(mid) < target) lo = mid + 1; else hi = mid;
      }
      bounds[c] = lo;
    }
  }
  const int64_t col_groups =
      parallel ? std::clamp<int64_t>(ceil_div(8 * threads, n_chunks), 1, n_tiles) : 1;
  const int64_t tiles_per_group = ceil_div(n_tiles, col_groups);

  run_tasks(parallel, n_chunks * col_groups, [&](int64_t t) {
    const int64_t chunk = t / col_groups;
    const int64_t m0 = bounds[chunk];
    const int64_t m1 = bounds[chunk + 1];
    if (m0 >= m1) return;
    const int64_t t0 = (t % col_groups) * tiles_per_group;
    const int64_t t1 = std::min(n_tiles, t0 + tiles_per_group);
    for (int64_t tile = t0; tile < t1; ++tile)
      kern.csr_rows(out, a, m0, m1, tile * k_spmm_tile_n, tile_width(a.n, tile));
  });
}

void spmm_24_f32(float* out, const spmm_24_f32_args& a) {
  const detail::spmm_kernels& kern = kernels();
  const int threads = num_threads();
  const int64_t groups = ceil_div(a.k, 4);
  const double flops = 2.0 * static_cast<double>(a.m) * 2 * groups * a.n;
  const bool parallel = threads > 1 && flops >= k_parallel_flops;
  const int64_t n_tiles = ceil_div(a.n, k_spmm_tile_n);

  const int64_t rows_per_chunk =
      parallel ? std::max<int64_t>(16, ceil_div(a.m, 8 * threads)) : a.m;
  const int64_t n_chunks = ceil_div(a.m, rows_per_chunk);
  const int64_t col_groups =
      parallel ? std::clamp<int64_t>(ceil_div(8 * threads, n_chunks), 1, n_tiles) : 1;
  const int64_t tiles_per_group = ceil_div(n_tiles, col_groups);

  run_tasks(parallel, n_chunks * col_groups, [&](int64_t t) {
    const int64_t chunk = t / col_groups;
    const int64_t m0 = chunk * rows_per_chunk;
    const int64_t m1 = std::min(a.m, m0 + rows_per_chunk);
    check_meta_rows(a, m0, m1);
    const int64_t t0 = (t % col_groups) * tiles_per_group;
    const int64_t t1 = std::min(n_tiles, t0 + tiles_per_group);
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int width = tile_width(a.n, tile);
      const int64_t j0 = tile * k_spmm_tile_n;
      // Groups per K block: B block [4 * gb, width] within the L1 budget; even, so
      // every block starts on a meta byte.
      const int64_t gb = std::max<int64_t>(2, (k_l1_block_bytes / (16 * width)) & ~int64_t{1});
      float* bb = tls_b_block.get(static_cast<size_t>(4 * gb * k_spmm_tile_n));
      for (int64_t r0 = m0; r0 < m1; r0 += k_rows_24) {
        const int64_t r1 = std::min(m1, r0 + k_rows_24);
        for (int64_t g0 = 0; g0 < groups; g0 += gb) {
          const int64_t g1 = std::min(groups, g0 + gb);
          // Staged: contiguous, 64-byte-aligned rows (B rows straight from JS memory are often
          // 16 bytes off, and then every other 32-byte load spans two cache lines: 2:4 ran
          // 65-71 vs 81-94 GFLOP/s eff by the alignment of B alone).
          for (int64_t k = 4 * g0; k < std::min(a.k, 4 * g1); ++k)
            std::copy_n(a.b + k * a.n + j0, width, bb + (k - 4 * g0) * k_spmm_tile_n);
          kern.rows_24(out, a, bb, k_spmm_tile_n, r0, r1, g0, g1, j0, width, g0 == 0);
        }
      }
    }
  });
}

}  // namespace tessera
