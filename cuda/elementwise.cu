// elementwise.cu: float32 add and fill, the first kernels of the CUDA backend (they prove the chain
// JS -> N-API -> stream -> kernel -> copy back; real work comes in later families).
//
// Layout: contiguous float32, starting at the buffer's base (cudaMalloc aligns to 256 bytes), so each
// thread moves 16-byte float4 vectors; the n % 4 tail is done by the first threads of block 0. Pointers
// that are not 16-byte aligned (a future view with an offset) take the scalar loop instead.
// Grid-stride loops over at most 8 blocks per SM: enough blocks in flight to cover memory latency
// without launching millions of them for large n.
// Roofline: memory-bound; add moves 12 bytes per element (two reads, one write), so on an H100 at the
// measured ~3.0 TB/s copy rate 2^20 elements take about 4 us plus ~3 us launch. Tolerance: add is one
// IEEE round-to-nearest operation, so results are bit-exact against Math.fround(a + b).
// `out` is not __restrict__: add_f32(a, a, b) is allowed, and each element is read before it is written
// by the same thread.
#include "elementwise.cuh"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace tessera_cuda {

namespace {

constexpr int kThreads = 256;

__global__ void add_f32_vec4(float* out, const float* a, const float* b, size_t n) {
  const size_t n4 = n / 4;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  auto* out4 = reinterpret_cast<float4*>(out);
  const auto* a4 = reinterpret_cast<const float4*>(a);
  const auto* b4 = reinterpret_cast<const float4*>(b);
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
    const float4 x = a4[i], y = b4[i];
    out4[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
  }
  if (blockIdx.x == 0 && threadIdx.x < n % 4) {
    const size_t i = n4 * 4 + threadIdx.x;
    out[i] = a[i] + b[i];
  }
}

__global__ void add_f32_scalar(float* out, const float* a, const float* b, size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = a[i] + b[i];
}

__global__ void fill_f32_vec4(float* out, float value, size_t n) {
  const size_t n4 = n / 4;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  auto* out4 = reinterpret_cast<float4*>(out);
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
    out4[i] = make_float4(value, value, value, value);
  }
  if (blockIdx.x == 0 && threadIdx.x < n % 4) out[n4 * 4 + threadIdx.x] = value;
}

__global__ void fill_f32_scalar(float* out, float value, size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = value;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Blocks for `work` items of one thread each, capped for the grid-stride loop.
unsigned grid_for(size_t work) {
  const size_t want = std::max<size_t>(1, (work + kThreads - 1) / kThreads);
  const size_t cap = size_t(std::max(1, device_sm_count())) * 8;
  return static_cast<unsigned>(std::min(want, cap));
}

// n floats of every buffer are in bounds, and n * 4 does not overflow.
Status check_f32(const DeviceBuffer& buf, size_t n, const char* what) {
  if (n > std::numeric_limits<size_t>::max() / sizeof(float)) {
    return status_error(Code::arg, std::string(what) + ": n is too large");
  }
  return buffer_check(buf, 0, n * sizeof(float), what);
}

Status launched(const char* what) { return status_from_cuda(cudaGetLastError(), what); }

}  // namespace

Status add_f32(DeviceBuffer* out, const DeviceBuffer& a, const DeviceBuffer& b, size_t n) {
  for (const DeviceBuffer* buf : {static_cast<const DeviceBuffer*>(out), &a, &b}) {
    Status s = check_f32(*buf, n, "addF32");
    if (!s.ok()) return s;
  }
  if (n == 0) return status_ok();
  Status s = device_ready();
  if (!s.ok()) return s;
  auto* o = static_cast<float*>(out->ptr);
  const auto* x = static_cast<const float*>(a.ptr);
  const auto* y = static_cast<const float*>(b.ptr);
  if (aligned16(o) && aligned16(x) && aligned16(y)) {
    add_f32_vec4<<<grid_for(n / 4), kThreads, 0, device_stream()>>>(o, x, y, n);
  } else {
    add_f32_scalar<<<grid_for(n), kThreads, 0, device_stream()>>>(o, x, y, n);
  }
  return launched("addF32 (launch)");
}

Status fill_f32(DeviceBuffer* out, float value, size_t n) {
  Status s = check_f32(*out, n, "fillF32");
  if (!s.ok() || n == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  auto* o = static_cast<float*>(out->ptr);
  if (aligned16(o)) {
    fill_f32_vec4<<<grid_for(n / 4), kThreads, 0, device_stream()>>>(o, value, n);
  } else {
    fill_f32_scalar<<<grid_for(n), kThreads, 0, device_stream()>>>(o, value, n);
  }
  return launched("fillF32 (launch)");
}

}  // namespace tessera_cuda
