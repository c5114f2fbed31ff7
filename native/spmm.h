// spmm: sparse A [M, K] @ dense B [K, N] -> out [M, N], f32, CSR and 2:4 layouts.
// Algorithm and tuning notes live in spmm.cc; the AVX2 row kernels in spmm_avx2.cc.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace tessera {

// A in CSR: row_ptr [m + 1] (row_ptr[0] = 0, non-decreasing, row_ptr[m] = nnz),
// col_idx [nnz] strictly increasing within a row, in [0, k); values [nnz].
struct spmm_csr_f32_args {
  const int32_t* row_ptr;
  const int32_t* col_idx;
  const float* values;
  const float* b;  // [k][n] row-major
  int64_t m, k, n, nnz;
};

// A in 2:4 along K (layout: lib/backends/js/sparse.ts): G = ceil(k/4) groups per row,
// values [m][2G] (the two kept values of group g at 2g, 2g+1), meta [m][ceil(G/2)]
// bytes, group g the nibble i0 | i1 << 2 (i0 < i1) of byte g/2 (even g: low nibble).
struct spmm_24_f32_args {
  const float* values;
  const uint8_t* meta;
  const float* b;  // [k][n] row-major
  int64_t m, k, n;
};

// A malformed sparse structure found while the kernel runs (column out of range or
// not increasing, a bad meta nibble, a nonzero at a padded 2:4 position). The
// message names the array and the entry. Output rows may be partly written.
class spmm_format_error : public std::runtime_error {
 public:
  explicit spmm_format_error(const std::string& what) : std::runtime_error(what) {}
};

// "" when row_ptr[0, m] is a valid CSR row pointer for nnz entries, else why not. O(m).
std::string csr_row_ptr_error(const int32_t* row_ptr, int64_t m, int64_t nnz);

// out [m][n] is overwritten (never read first). Dims >= 1 and buffer lengths are
// validated by the caller; the sparse structure is checked here as it is used, so
// indices from JS can never address memory outside b (throws spmm_format_error).
void spmm_csr_f32(float* out, const spmm_csr_f32_args& a);
void spmm_24_f32(float* out, const spmm_24_f32_args& a);

namespace detail {

constexpr int k_spmm_tile_n = 64;  // columns per register tile: 8 ymm accumulators

// Row kernels on one column tile [j0, j0 + width), 1 <= width <= k_spmm_tile_n.
struct spmm_kernels {
  // out rows [m0, m1) = A rows @ B; checks row_ptr / col_idx entries as it reads them.
  void (*csr_rows)(float* out, const spmm_csr_f32_args& a, int64_t m0, int64_t m1, int64_t j0,
                   int width);
  // out rows [m0, m1) (first ? = : +=) groups [g0, g1) of A rows @ B; g0 even. B row k of
  // the block (4 * g0 <= k < min(a.k, 4 * g1)), columns [j0, j0 + width), is at
  // bb + (k - 4 * g0) * ldb (the driver's staged copy). Skips padded positions (k >= a.k);
  // meta must have been validated (any nibble is memory-safe).
  void (*rows_24)(float* out, const spmm_24_f32_args& a, const float* bb, int64_t ldb, int64_t m0,
                  int64_t m1, int64_t g0, int64_t g1, int64_t j0, int width, bool first);
};

spmm_kernels spmm_kernels_avx2();  // {nullptr, nullptr} when not built for x86-64

// Cold paths shared by the kernels: throw spmm_format_error with a precise message.
[[noreturn]] void throw_bad_row(const spmm_csr_f32_args& a, int64_t row, int64_t p0, int64_t p1);
[[noreturn]] void throw_bad_column(const spmm_csr_f32_args& a, int64_t row, int64_t p, int64_t col);

// Reads v exactly once (a relaxed atomic load is a plain mov): a value that JS
// may change under an async call is checked and used as the same value.
template <class T>
inline T load_once(const T* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

}  // namespace detail

}  // namespace tessera
