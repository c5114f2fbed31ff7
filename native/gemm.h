// gemm: batched f32 matrix multiply, out[b] = op(A[b]) @ op(B[b]).
// Algorithm and tuning notes live in gemm.cc; the AVX2 micro-kernel in gemm_avx2.cc.
#pragma once

#include <cstdint>

namespace tessera {

struct gemm_f32_shape {
  int64_t batch;
  int64_t m, n, k;
  int64_t stride_a, stride_b;  // elements between batch matrices; 0 = broadcast
  bool trans_a;                // A stored [K][M] instead of [M][K]
  bool trans_b;                // B stored [N][K] instead of [K][N]
};

// out: [batch][m][n] contiguous, overwritten (never read). Dims already
// validated by the caller: all >= 1 and the buffers long enough.
void gemm_f32(float* out, const float* a, const float* b, const gemm_f32_shape& shape);

// Operand storage of gemm_mixed: float32, or raw IEEE float16 / bfloat16 bits.
enum class gemm_src : int { f32 = 0, f16 = 1, bf16 = 2 };

// The same product with float16/bfloat16 operands (either or both): they are widened to float32 while
// they are packed into the micro-kernel's panels (exactly: every half value is a float32), then the
// float32 kernels run. Both operands float32: gemm_f32. Half operands always take the packed path.
void gemm_mixed(float* out, const void* a, gemm_src a_src, const void* b, gemm_src b_src,
                const gemm_f32_shape& shape);

namespace detail {

// C tile (m_valid x n_valid, row stride ldc) = or += packed A sliver (kc x mr)
// times packed B sliver (kc x nr). Padding rows/cols of the slivers are zero.
using gemm_micro_kernel = void (*)(int64_t kc, const float* a_packed, const float* b_packed,
                                   float* c, int64_t ldc, int m_valid, int n_valid,
                                   bool accumulate);

struct gemm_kernel_info {
  int mr;
  int nr;
  gemm_micro_kernel kernel;
};

gemm_kernel_info gemm_kernel_avx2();  // 6 x 16, AVX2 + FMA

// dst[p * 6 + ii] = src[ii * lda + p] for 6 full rows and p < kc (A sliver packing
// for the 6x16 kernel). Returns false if not built for x86-64.
bool gemm_pack_a6_avx2(float* dst, const float* src, int64_t lda, int64_t kc);

// ---- shared by gemm.cc and gemm_packed.cc ----------------------------------------

// K block of gemm_stream_b (gemm_packed uses its own, 384); each path sums an element's K
// blocks in order.
constexpr int64_t k_gemm_kc = 256;

// Element (i, p) at p[i * rs + p * cs] (A as (i, p), B as (p, j)); with src f16 / bf16 the
// element is the 16-bit value at h[i * rs + p * cs] instead (p unused), widened when packed.
struct gemm_view {
  const float* p;
  int64_t rs;
  int64_t cs;
  const uint16_t* h = nullptr;
  gemm_src src = gemm_src::f32;
};

// Packing into micro-kernel slivers (gemm.cc): an A sliver is [kc][mr] (rows >= `rows`
// zero), a B sliver [kc][nr] (cols >= `cols` zero). gemm_pack_b_rows: n_sl full
// slivers of row-major B whose first row starts at src (row stride ld).
void gemm_pack_a(float* dst, const gemm_view& a, int64_t i0, int rows, int64_t p0, int64_t kc,
                 int mr);
void gemm_pack_b(float* dst, const gemm_view& b, int64_t j0, int cols, int64_t p0, int64_t kc,
                 int nr);
void gemm_pack_b_rows(float* dst, const float* src, int64_t ld, int64_t kc, int64_t n_sl, int nr);

// c[m][n] (row stride n) = A @ B for large M (gemm_packed.cc). `parallel`: the pool
// joins in; results are the same bits either way.
void gemm_packed(float* c, const gemm_view& a, const gemm_view& b, int64_t m, int64_t n,
                 int64_t k, const gemm_kernel_info& kern, bool parallel);

constexpr int k_small_m = 4;  // m <= this takes the unpacked small-M path

// Small-M (GEMV-like) AVX2 path, columns [j0, j1) of c (m rows, row stride n):
//   trans_b: c[i][j] = dot(A row i, B row j), A rows contiguous (a_cs must be 1)
//   else:    c[i][:] = sum_p A(i, p) * B[p][:], A element (i, p) at a[i*a_rs + p*a_cs]
// Both stream B exactly once without packing. Returns false if not built for x86-64.
bool gemm_small_m_avx2(float* c, const float* a, int64_t a_rs, int64_t a_cs, int m,
                       const float* b, int64_t n, int64_t k, bool trans_b, int64_t j0,
                       int64_t j1);

// Small-M GEMV-like path with float32 A (rows contiguous, row stride a_rs) and bfloat16 B stored
// [n][k] (trans_b: a Linear weight): c[i][j] = dot(A row i, B row j) for j in [j0, j1), B widened in
// registers. m <= k_small_m. Returns false if not built for x86-64.
bool gemm_small_m_bf16_avx2(float* c, const float* a, int64_t a_rs, int m, const uint16_t* b,
                            int64_t n, int64_t k, int64_t j0, int64_t j1);
// The same with float16 B (F16C conversion: call only when cpu_has_f16c()).
bool gemm_small_m_f16_avx2(float* c, const float* a, int64_t a_rs, int m, const uint16_t* b,
                           int64_t n, int64_t k, int64_t j0, int64_t j1);

}  // namespace detail

}  // namespace tessera
