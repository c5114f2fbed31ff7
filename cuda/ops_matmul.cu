// ops_matmul.cu: batched matmul with broadcast batch dims and an optional bias (torch.matmul / linear).
//
// Operands are views: a [...batch, M, K], b [...batch, K, N] with any element strides (stride 0 on
// broadcast batch dims), so transposed weights (linear's w[N, K] read as [K, N]), transposed views and
// broadcast batches need no copy. Batch dims are coalesced; grid.z walks the batch (grid-stride past
// 65535), grid.x the M tiles, grid.y the N tiles.
//
// Tiles are staged through shared memory with scalar loads whose thread mapping follows the operand's
// unit-stride dim (k for a row-major a, m for a transposed one; n or k for b), so global reads coalesce
// for either layout; out-of-range rows/cols load as zero, so every size (1, 7, 33, 127 ...) works.
//   float16 x float16, bfloat16 x bfloat16: tensor cores through WMMA (mma.sync HMMA), 64x64x32 block tile,
//     4 warps of 32x32 (2x2 fragments of 16x16x16), float32 accumulation; the float32 tile goes through
//     shared memory for a coalesced, bounds-checked epilogue (bias, rounding to the output dtype).
//   everything else (float32, mixed dtypes): float32 FFMA, 64x64x16 block tile, 256 threads with a 4x4
//     register tile each (rows ty + 16i, cols tx + 16j: conflict-free shared reads). No TF32: the products
//     keep float32 accuracy (‖err‖/‖ref‖ ~ 1e-7 * sqrt(K)), as the 2e-5 float32 tolerance requires.
// Tolerance: float32 2e-5; float16/bfloat16 outputs one rounding of the output format above the float32
// accumulation (the inputs are exact in it).
// Roofline (H100): bf16 dense ~990 TFLOP/s on the tensor cores, ~60 TFLOP/s float32 FFMA. This kernel is
// the simple correct version: no cp.async pipeline, no wgmma, scalar tile loads; expect a small fraction of
// peak (it is here so every matmul runs on device; a tuned GEMM replaces the large-shape path later).
#include <mma.h>

#include "ops_device.cuh"

namespace tessera_cuda {

namespace {

using namespace nvcuda;

struct MmArgs {
  const char* a;
  const char* b;
  const char* bias;  // null: none
  char* out;
  int a_dt, b_dt, bias_dt, out_dt;
  uint32_t M, N, K;
  uint32_t sam, sak, sbk, sbn, sbias;
  int brank;
  uint32_t bshape[kMaxDims], bsa[kMaxDims], bsb[kMaxDims];
  uint32_t batch;
};

template <class T>
__device__ __forceinline__ T zero_of();
template <>
__device__ __forceinline__ __half zero_of<__half>() { return __float2half(0.f); }
template <>
__device__ __forceinline__ __nv_bfloat16 zero_of<__nv_bfloat16>() { return __float2bfloat16(0.f); }

__device__ __forceinline__ void epilogue_store(const MmArgs& p, uint32_t z, uint32_t m, uint32_t n, float v) {
  if (p.bias) v += load_f32(p.bias, p.bias_dt, n * p.sbias);
  const size_t o = (size_t(z) * p.M + m) * p.N + n;
  store_f32(p.out, p.out_dt, static_cast<uint32_t>(o), v);
}

template <class T>
__global__ void __launch_bounds__(128) mm_tc_kernel(MmArgs p) {
  constexpr int BM = 64, BN = 64, BK = 32, LDA = BK + 8, LDB = BN + 8, LDC = BN + 4, NT = 128;
  __shared__ __align__(128) T As[BM * LDA];
  __shared__ __align__(128) T Bs[BK * LDB];
  __shared__ __align__(128) float Cs[BM * LDC];
  const T* A = reinterpret_cast<const T*>(p.a);
  const T* B = reinterpret_cast<const T*>(p.b);
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const uint32_t m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const bool a_k_fast = p.sak == 1, b_n_fast = p.sbn == 1;
  const T zero = zero_of<T>();
  for (uint32_t z = blockIdx.z; z < p.batch; z += gridDim.z) {
    const T* Az = A + strided_offset(z, p.brank, p.bshape, p.bsa);
    const T* Bz = B + strided_offset(z, p.brank, p.bshape, p.bsb);
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
    for (uint32_t k0 = 0; k0 < p.K; k0 += BK) {
#pragma unroll
      for (int i = 0; i < BM * BK / NT; ++i) {
        const int e = tid + i * NT;
        const int r = a_k_fast ? e / BK : e % BM, c = a_k_fast ? e % BK : e / BM;
        const uint32_t m = m0 + r, k = k0 + c;
        As[r * LDA + c] = (m < p.M && k < p.K) ? Az[m * p.sam + k * p.sak] : zero;
      }
#pragma unroll
      for (int i = 0; i < BK * BN / NT; ++i) {
        const int e = tid + i * NT;
        const int r = b_n_fast ? e / BN : e % BK, c = b_n_fast ? e % BN : e / BK;
        const uint32_t k = k0 + r, n = n0 + c;
        Bs[r * LDB + c] = (k < p.K && n < p.N) ? Bz[k * p.sbk + n * p.sbn] : zero;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * LDA + kk, LDA);
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], Bs + kk * LDB + wn * 32 + j * 16, LDB);
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC, wmma::mem_row_major);
      }
    __syncthreads();
    for (int e = tid; e < BM * BN; e += NT) {
      const int r = e / BN, c = e % BN;
      const uint32_t m = m0 + r, n = n0 + c;
      if (m < p.M && n < p.N) epilogue_store(p, z, m, n, Cs[r * LDC + c]);
    }
    __syncthreads();  // Cs is rewritten for the next batch entry
  }
}

__global__ void __launch_bounds__(256) mm_f32_kernel(MmArgs p) {
  constexpr int BM = 64, BN = 64, BK = 16, NT = 256;
  __shared__ float As[BK][BM + 4];  // k-major: a column of the tile is contiguous
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const uint32_t m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const bool a_k_fast = p.sak == 1, b_n_fast = p.sbn == 1;
  for (uint32_t z = blockIdx.z; z < p.batch; z += gridDim.z) {
    const uint32_t za = strided_offset(z, p.brank, p.bshape, p.bsa);
    const uint32_t zb = strided_offset(z, p.brank, p.bshape, p.bsb);
    float acc[4][4] = {};
    for (uint32_t k0 = 0; k0 < p.K; k0 += BK) {
#pragma unroll
      for (int i = 0; i < BM * BK / NT; ++i) {
        const int e = tid + i * NT;
        const int r = a_k_fast ? e / BK : e % BM, c = a_k_fast ? e % BK : e / BM;
        const uint32_t m = m0 + r, k = k0 + c;
        As[c][r] = (m < p.M && k < p.K) ? load_f32(p.a, p.a_dt, za + m * p.sam + k * p.sak) : 0.f;
      }
#pragma unroll
      for (int i = 0; i < BK * BN / NT; ++i) {
        const int e = tid + i * NT;
        const int r = b_n_fast ? e / BN : e % BK, c = b_n_fast ? e % BN : e / BK;
        const uint32_t k = k0 + r, n = n0 + c;
        Bs[r][c] = (k < p.K && n < p.N) ? load_f32(p.b, p.b_dt, zb + k * p.sbk + n * p.sbn) : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        float av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
        if (m < p.M && n < p.N) epilogue_store(p, z, m, n, acc[i][j]);
      }
  }
}

}  // namespace

Status matmul(const TensorRef& out, const TensorRef& a, const TensorRef& b, const TensorRef* bias) {
  Status s = check_ref(a, "matmul a");
  if (!s.ok()) return s;
  s = check_ref(b, "matmul b");
  if (!s.ok()) return s;
  const size_t ra = a.shape.size(), rb = b.shape.size();
  if (ra < 2 || ra != rb || !std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin()) ||
      a.shape[ra - 1] != b.shape[rb - 2]) {
    return status_error(Code::arg, "matmul: a must be [...batch, M, K] and b [...batch, K, N] with equal batch dims");
  }
  if (!is_float_dtype(a.dtype) || !is_float_dtype(b.dtype)) return status_error(Code::arg, "matmul: operands must be float32, float16 or bfloat16");
  MmArgs p{};
  p.M = static_cast<uint32_t>(a.shape[ra - 2]);
  p.K = static_cast<uint32_t>(a.shape[ra - 1]);
  p.N = static_cast<uint32_t>(b.shape[rb - 1]);
  p.sam = static_cast<uint32_t>(a.strides[ra - 2]);
  p.sak = static_cast<uint32_t>(a.strides[ra - 1]);
  p.sbk = static_cast<uint32_t>(b.strides[rb - 2]);
  p.sbn = static_cast<uint32_t>(b.strides[rb - 1]);
  size_t batch = 1;
  for (size_t d = 0; d + 2 < ra; ++d) batch *= a.shape[d];
  s = check_out(out, batch * p.M * p.N, "matmul");
  if (!s.ok()) return s;
  if (bias != nullptr) {
    s = check_ref(*bias, "matmul bias");
    if (!s.ok()) return s;
    if (bias->shape.size() != 1 || bias->shape[0] != p.N || !is_float_dtype(bias->dtype)) {
      return status_error(Code::arg, "matmul: bias must be a float [N]");
    }
    p.bias = bias->base();
    p.bias_dt = bias->dtype;
    p.sbias = static_cast<uint32_t>(bias->strides[0]);
  }
  if (batch * p.M * p.N == 0) return status_ok();
  TensorRef ba, bb;  // the batch dims alone, coalesced together
  ba.shape.assign(a.shape.begin(), a.shape.end() - 2);
  ba.strides.assign(a.strides.begin(), a.strides.end() - 2);
  bb.shape = ba.shape;
  bb.strides.assign(b.strides.begin(), b.strides.end() - 2);
  const TensorRef* refs[] = {&ba, &bb};
  Layout<2> lay;
  if (!coalesce<2>(refs, &lay)) return status_error(Code::arg, "matmul: more than 8 batch dims remain after merging");
  p.brank = lay.rank;
  for (int d = 0; d < lay.rank; ++d) {
    p.bshape[d] = lay.shape[d];
    p.bsa[d] = lay.stride[0][d];
    p.bsb[d] = lay.stride[1][d];
  }
  p.batch = static_cast<uint32_t>(batch);
  p.a = a.base();
  p.b = b.base();
  p.out = out.base();
  p.a_dt = a.dtype;
  p.b_dt = b.dtype;
  p.out_dt = out.dtype;
  const size_t tiles_n = (size_t(p.N) + 63) / 64;
  if (tiles_n > 65535) return status_error(Code::arg, "matmul: N is too large (more than 65535 tiles of 64)");
  s = device_ready();
  if (!s.ok()) return s;
  const dim3 grid(static_cast<unsigned>((size_t(p.M) + 63) / 64), static_cast<unsigned>(tiles_n),
                  static_cast<unsigned>(std::min<size_t>(batch, 65535)));
  if (a.dtype == b.dtype && a.dtype == kF16) {
    mm_tc_kernel<__half><<<grid, 128, 0, device_stream()>>>(p);
  } else if (a.dtype == b.dtype && a.dtype == kBF16) {
    mm_tc_kernel<__nv_bfloat16><<<grid, 128, 0, device_stream()>>>(p);
  } else {
    mm_f32_kernel<<<grid, 256, 0, device_stream()>>>(p);
  }
  return launched("matmul");
}

}  // namespace tessera_cuda
