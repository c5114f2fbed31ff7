// ops_device.cuh: helpers shared by the ops_*.cu kernel files (not part of the glue's view).
//   device: load/store of every storage dtype as float32, NaN-propagating max/min, warp reductions,
//           strided offsets over up to kMaxDims dims (unrolled, so index arrays stay in registers).
//   host:   Layout (a coalesced shape with one stride row per operand), grid sizing, launch checks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "ops.cuh"

namespace tessera_cuda {

// ------------------------------------------------------------------------------------------ device

__device__ __forceinline__ float load_f32(const char* base, int dt, uint32_t i) {
  switch (dt) {
    case kF32: return reinterpret_cast<const float*>(base)[i];
    case kF16: return __half2float(reinterpret_cast<const __half*>(base)[i]);
    case kBF16: return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(base)[i]);
    case kI32: return static_cast<float>(reinterpret_cast<const int32_t*>(base)[i]);
    case kU8: return static_cast<float>(reinterpret_cast<const uint8_t*>(base)[i]);
    case kI8: return static_cast<float>(reinterpret_cast<const int8_t*>(base)[i]);
    default: return reinterpret_cast<const uint8_t*>(base)[i] != 0 ? 1.f : 0.f;  // bool
  }
}

// Integer stores follow lib/dtype.ts: truncate toward zero, saturate, NaN -> 0; bool is v != 0.
__device__ __forceinline__ float sat_trunc(float v, float lo, float hi) {
  if (v != v) return 0.f;
  return fminf(fmaxf(truncf(v), lo), hi);
}

__device__ __forceinline__ void store_f32(char* base, int dt, uint32_t i, float v) {
  switch (dt) {
    case kF32: reinterpret_cast<float*>(base)[i] = v; break;
    case kF16: reinterpret_cast<__half*>(base)[i] = __float2half_rn(v); break;
    case kBF16: reinterpret_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); break;
    case kI32: {
      // 2147483647 is not a float; compare in double so the top of the range saturates exactly.
      const double t = v != v ? 0.0 : fmin(fmax(trunc(double(v)), -2147483648.0), 2147483647.0);
      reinterpret_cast<int32_t*>(base)[i] = static_cast<int32_t>(t);
      break;
    }
    case kU8: reinterpret_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(sat_trunc(v, 0.f, 255.f)); break;
    case kI8: reinterpret_cast<int8_t*>(base)[i] = static_cast<int8_t>(sat_trunc(v, -128.f, 127.f)); break;
    default: reinterpret_cast<uint8_t*>(base)[i] = v != 0.f ? 1 : 0; break;  // bool: NaN -> 1
  }
}

// Math.max / Math.min semantics: NaN if either is NaN.
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }
__device__ __forceinline__ float nan_min(float a, float b) { return (a != a || a < b) ? a : b; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Element offset of row-major index i over `rank` dims of shape/stride (dims beyond rank ignored).
__device__ __forceinline__ uint32_t strided_offset(uint32_t i, int rank, const uint32_t* shape,
                                                   const uint32_t* stride) {
  uint32_t off = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < rank) {
      const uint32_t c = i % shape[d];
      i /= shape[d];
      off += c * stride[d];
    }
  }
  return off;
}

// ------------------------------------------------------------------------------------------ host

constexpr int kThreads = 256;

// A shape shared by N operands, each with its own strides, after dropping size-1 dims and merging
// neighbours that are contiguous in every operand. rank 0 means one element.
template <int N>
struct Layout {
  int rank = 0;
  uint32_t shape[kMaxDims] = {};
  uint32_t stride[N][kMaxDims] = {};
};

// Builds the Layout of refs[0..N) (all with the shape of refs[0]); false if more than kMaxDims dims remain.
template <int N>
bool coalesce(const TensorRef* const* refs, Layout<N>* out) {
  const std::vector<size_t>& shape = refs[0]->shape;
  size_t sh[64];
  size_t st[N][64];
  int r = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (r > 0) {
      bool merge = true;
      for (int k = 0; k < N; ++k) merge = merge && st[k][r - 1] == refs[k]->strides[d] * shape[d];
      if (merge) {
        sh[r - 1] *= shape[d];
        for (int k = 0; k < N; ++k) st[k][r - 1] = refs[k]->strides[d];
        continue;
      }
    }
    if (r == 64) return false;
    sh[r] = shape[d];
    for (int k = 0; k < N; ++k) st[k][r] = refs[k]->strides[d];
    ++r;
  }
  if (r > kMaxDims) return false;
  out->rank = r;
  for (int d = 0; d < r; ++d) {
    out->shape[d] = static_cast<uint32_t>(sh[d]);
    for (int k = 0; k < N; ++k) out->stride[k][d] = static_cast<uint32_t>(st[k][d]);
  }
  return true;
}

// Blocks for `work` independent items of one thread each, capped for grid-stride loops.
inline unsigned blocks_for(size_t work, int threads = kThreads) {
  const size_t want = std::max<size_t>(1, (work + threads - 1) / threads);
  const size_t cap = size_t(std::max(1, device_sm_count())) * 16;
  return static_cast<unsigned>(std::min(want, cap));
}

inline Status launched(const char* what) { return status_from_cuda(cudaGetLastError(), what); }

// Fails unless `out` is dense with `want` elements of a float dtype.
Status check_out(const TensorRef& out, size_t want, const char* what, bool float_only = true);
// Same shape as `shape`.
bool same_shape(const TensorRef& t, const std::vector<size_t>& shape);

}  // namespace tessera_cuda
