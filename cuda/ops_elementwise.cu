// ops_elementwise.cu: unary, binary (broadcast), where, dtype-converting strided copy and tril/triu; plus
// the TensorRef checks every ops_*.cu file uses.
//
// Algorithm: one thread per output element in a grid-stride loop. Operands share the output's shape
// (broadcast inputs carry stride 0), which is coalesced first (size-1 dims dropped, dims contiguous in
// every operand merged), so a same-shape contiguous op is one dim and takes the kContig path with no index
// arithmetic; others decompose the flat index over at most kMaxDims dims with 32-bit div/mod.
// Each element is loaded as float32 from its storage dtype, computed in float32 with the precise libm
// functions (no fast-math), and rounded once to the output dtype. Against the float64 JS reference the
// float32 results are within a few ulp (tolerance 2e-5 relative); float16/bfloat16 outputs within one
// rounding of the output format. Semantics follow lib/backends/js/elementwise.ts: maximum/minimum and
// relu propagate NaN, pow is C pow (pow(1, NaN) = 1), sigmoid never overflows, gelu uses erfc.
// Roofline: memory-bound, (inputs + output) bytes per element; a contiguous float32 binary op moves 12
// bytes/element, ~4 us per 2^20 elements at the ~3 TB/s an H100 copies. Not vectorized: the goal of this
// file is every op, correct, on device; the fast paths of hot fused ops belong in their own kernels.
#include <cmath>

#include "ops_device.cuh"

namespace tessera_cuda {

// ------------------------------------------------------------------------------------------ TensorRef

size_t dtype_size(int dtype) {
  switch (dtype) {
    case kF32: case kI32: return 4;
    case kF16: case kBF16: return 2;
    default: return 1;
  }
}

size_t TensorRef::numel() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

bool TensorRef::dense() const {
  size_t expect = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

char* TensorRef::base() const { return static_cast<char*>(buf->ptr) + offset * dtype_size(dtype); }

Status check_ref(const TensorRef& t, const char* what) {
  const std::string w(what);
  if (t.buf == nullptr) return status_error(Code::arg, w + ": missing buffer");
  if (t.buf->freed) return status_error(Code::freed, w + ": buffer was freed");
  if (t.dtype < 0 || t.dtype >= kDTypeCount) return status_error(Code::arg, w + ": unknown dtype code");
  if (t.shape.size() != t.strides.size()) return status_error(Code::arg, w + ": shape and strides differ in length");
  constexpr size_t kLimit = size_t(1) << 32;
  size_t numel = 1, reach = t.offset;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] >= kLimit || t.strides[d] >= kLimit) return status_error(Code::arg, w + ": dim too large");
    numel *= t.shape[d];
    if (numel >= kLimit) return status_error(Code::arg, w + ": 2^32 or more elements");
  }
  if (numel == 0) return status_ok();
  for (size_t d = 0; d < t.shape.size(); ++d) {
    reach += (t.shape[d] - 1) * t.strides[d];  // each term < 2^64 / 64: no overflow
    if (reach >= kLimit) return status_error(Code::arg, w + ": element offsets reach past 2^32");
  }
  if ((reach + 1) * dtype_size(t.dtype) > t.buf->bytes) {
    return status_error(Code::arg, w + ": view reaches element " + std::to_string(reach) + ", past the end of its " +
                                       std::to_string(t.buf->bytes) + "-byte buffer");
  }
  return status_ok();
}

bool same_shape(const TensorRef& t, const std::vector<size_t>& shape) { return t.shape == shape; }

Status check_out(const TensorRef& out, size_t want, const char* what, bool float_only) {
  Status s = check_ref(out, what);
  if (!s.ok()) return s;
  if (!out.dense()) return status_error(Code::arg, std::string(what) + ": output must be dense");
  if (out.numel() != want) return status_error(Code::arg, std::string(what) + ": output has the wrong size");
  if (float_only && !is_float_dtype(out.dtype)) {
    return status_error(Code::arg, std::string(what) + ": output dtype must be float32, float16 or bfloat16");
  }
  return status_ok();
}

namespace {

// ------------------------------------------------------------------------------------------ functors

enum class Un { neg, abs, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, silu, gelu, gelu_tanh, square, copy };
enum class Bin { add, sub, mul, div, pow, maximum, minimum };

__device__ __forceinline__ float sigmoid_f(float x) {
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}

template <Un OP>
struct UnaryF {
  static constexpr int kIn = 1;
  __device__ float operator()(const float* v) const {
    const float x = v[0];
    if constexpr (OP == Un::neg) return -x;
    if constexpr (OP == Un::abs) return fabsf(x);
    if constexpr (OP == Un::exp) return expf(x);
    if constexpr (OP == Un::log) return logf(x);
    if constexpr (OP == Un::sqrt) return sqrtf(x);
    if constexpr (OP == Un::rsqrt) return 1.f / sqrtf(x);
    if constexpr (OP == Un::sin) return sinf(x);
    if constexpr (OP == Un::cos) return cosf(x);
    if constexpr (OP == Un::tanh) return tanhf(x);
    if constexpr (OP == Un::sigmoid) return sigmoid_f(x);
    if constexpr (OP == Un::relu) return (x > 0.f || x != x) ? x : 0.f;
    if constexpr (OP == Un::silu) return x * sigmoid_f(x);
    if constexpr (OP == Un::gelu) return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    if constexpr (OP == Un::gelu_tanh) {
      return 0.5f * x * (1.f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
    if constexpr (OP == Un::square) return x * x;
    return x;  // copy
  }
};

template <Bin OP>
struct BinaryF {
  static constexpr int kIn = 2;
  __device__ float operator()(const float* v) const {
    const float x = v[0], y = v[1];
    if constexpr (OP == Bin::add) return x + y;
    if constexpr (OP == Bin::sub) return x - y;
    if constexpr (OP == Bin::mul) return x * y;
    if constexpr (OP == Bin::div) return x / y;
    if constexpr (OP == Bin::pow) return powf(x, y);
    if constexpr (OP == Bin::maximum) return nan_max(x, y);
    return nan_min(x, y);
  }
};

struct WhereF {
  static constexpr int kIn = 3;
  __device__ float operator()(const float* v) const { return v[0] != 0.f ? v[1] : v[2]; }
};

// ------------------------------------------------------------------------------------------ kernels

template <int N>
struct EwArgs {
  Layout<N> lay;        // operand 0 is the output
  char* ptr[N];
  int dt[N];
  uint32_t n;
};

template <class F, int N, bool kContig>
__global__ void ew_kernel(EwArgs<N> p, F f) {
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += step) {
    uint32_t off[N];
    if constexpr (kContig) {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = static_cast<uint32_t>(i);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = strided_offset(static_cast<uint32_t>(i), p.lay.rank, p.lay.shape, p.lay.stride[k]);
    }
    float v[N - 1];
#pragma unroll
    for (int k = 1; k < N; ++k) v[k - 1] = load_f32(p.ptr[k], p.dt[k], off[k]);
    store_f32(p.ptr[0], p.dt[0], off[0], f(v));
  }
}

// Same-dtype strided copy, bit for bit (E = element type of the right size).
template <class E>
__global__ void copy_bits_kernel(EwArgs<2> p) {
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += step) {
    const uint32_t o = strided_offset(static_cast<uint32_t>(i), p.lay.rank, p.lay.shape, p.lay.stride[0]);
    const uint32_t s = strided_offset(static_cast<uint32_t>(i), p.lay.rank, p.lay.shape, p.lay.stride[1]);
    reinterpret_cast<E*>(p.ptr[0])[o] = reinterpret_cast<const E*>(p.ptr[1])[s];
  }
}

__global__ void triangle_kernel(char* out, int out_dt, const char* x, int x_dt, uint32_t n, uint32_t rows,
                                uint32_t cols, long long diagonal, bool lower) {
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const long long c = static_cast<long long>(i % cols);
    const long long r = static_cast<long long>((i / cols) % rows);
    const bool keep = lower ? c - r <= diagonal : c - r >= diagonal;
    store_f32(out, out_dt, static_cast<uint32_t>(i), keep ? load_f32(x, x_dt, static_cast<uint32_t>(i)) : 0.f);
  }
}

// ------------------------------------------------------------------------------------------ launch

template <int N>
Status prepare(const TensorRef* const* refs, const char* what, EwArgs<N>* args) {
  static const char* const kNames[] = {"out", "input 1", "input 2", "input 3"};
  for (int k = 0; k < N; ++k) {
    Status s = check_ref(*refs[k], kNames[k]);
    if (!s.ok()) return status_error(s.code, std::string(what) + ": " + s.message);
    if (k > 0 && !same_shape(*refs[k], refs[0]->shape)) {
      return status_error(Code::arg, std::string(what) + ": " + kNames[k] + " does not have the output's shape");
    }
    args->ptr[k] = refs[k]->base();
    args->dt[k] = refs[k]->dtype;
  }
  if (!coalesce<N>(refs, &args->lay)) {
    return status_error(Code::arg, std::string(what) + ": more than 8 dims remain after merging contiguous dims");
  }
  args->n = static_cast<uint32_t>(refs[0]->numel());
  return device_ready();
}

template <int N>
bool contiguous(const EwArgs<N>& a) {
  if (a.lay.rank > 1) return false;
  for (int k = 0; k < N; ++k) {
    if (a.lay.rank == 1 && a.lay.stride[k][0] != 1) return false;
  }
  return true;
}

template <class F>
Status run_ew(const TensorRef* const* refs, const char* what, F f) {
  constexpr int N = F::kIn + 1;
  EwArgs<N> args;
  Status s = prepare<N>(refs, what, &args);
  if (!s.ok() || args.n == 0) return s;
  if (!is_float_dtype(args.dt[0]) && args.dt[0] != kI32 && args.dt[0] != kU8 && args.dt[0] != kI8 && args.dt[0] != kBool) {
    return status_error(Code::arg, std::string(what) + ": bad output dtype");
  }
  const unsigned grid = blocks_for(args.n);
  if (contiguous(args)) {
    ew_kernel<F, N, true><<<grid, kThreads, 0, device_stream()>>>(args, f);
  } else {
    ew_kernel<F, N, false><<<grid, kThreads, 0, device_stream()>>>(args, f);
  }
  return launched(what);
}

}  // namespace

Status ew_unary(const std::string& op, const TensorRef& out, const TensorRef& x) {
  const TensorRef* refs[] = {&out, &x};
#define TESSERA_UNARY(name) \
  if (op == #name) return run_ew(refs, "unary " #name, UnaryF<Un::name>{});
  TESSERA_UNARY(neg) TESSERA_UNARY(abs) TESSERA_UNARY(exp) TESSERA_UNARY(log) TESSERA_UNARY(sqrt)
  TESSERA_UNARY(rsqrt) TESSERA_UNARY(sin) TESSERA_UNARY(cos) TESSERA_UNARY(tanh) TESSERA_UNARY(sigmoid)
  TESSERA_UNARY(relu) TESSERA_UNARY(silu) TESSERA_UNARY(gelu) TESSERA_UNARY(gelu_tanh) TESSERA_UNARY(square)
#undef TESSERA_UNARY
  return status_error(Code::arg, "unary: unknown op '" + op + "'");
}

Status ew_binary(const std::string& op, const TensorRef& out, const TensorRef& a, const TensorRef& b) {
  const TensorRef* refs[] = {&out, &a, &b};
#define TESSERA_BINARY(name) \
  if (op == #name) return run_ew(refs, "binary " #name, BinaryF<Bin::name>{});
  TESSERA_BINARY(add) TESSERA_BINARY(sub) TESSERA_BINARY(mul) TESSERA_BINARY(div) TESSERA_BINARY(pow)
  TESSERA_BINARY(maximum) TESSERA_BINARY(minimum)
#undef TESSERA_BINARY
  return status_error(Code::arg, "binary: unknown op '" + op + "'");
}

Status ew_where(const TensorRef& out, const TensorRef& cond, const TensorRef& a, const TensorRef& b) {
  const TensorRef* refs[] = {&out, &cond, &a, &b};
  return run_ew(refs, "where", WhereF{});
}

Status ew_copy(const TensorRef& out, const TensorRef& x) {
  const TensorRef* refs[] = {&out, &x};
  if (out.dtype != x.dtype) return run_ew(refs, "copy", UnaryF<Un::copy>{});
  EwArgs<2> args;
  Status s = prepare<2>(refs, "copy", &args);
  if (!s.ok() || args.n == 0) return s;
  const unsigned grid = blocks_for(args.n);
  switch (dtype_size(out.dtype)) {
    case 4: copy_bits_kernel<uint32_t><<<grid, kThreads, 0, device_stream()>>>(args); break;
    case 2: copy_bits_kernel<uint16_t><<<grid, kThreads, 0, device_stream()>>>(args); break;
    default: copy_bits_kernel<uint8_t><<<grid, kThreads, 0, device_stream()>>>(args); break;
  }
  return launched("copy");
}

Status ew_triangle(const TensorRef& out, const TensorRef& x, long long diagonal, bool lower) {
  const char* what = lower ? "tril" : "triu";
  Status s = check_ref(x, what);
  if (!s.ok()) return s;
  if (x.shape.size() < 2 || !x.dense()) return status_error(Code::arg, std::string(what) + ": x must be dense with 2+ dims");
  s = check_out(out, x.numel(), what);
  if (!s.ok() || x.numel() == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  const size_t rows = x.shape[x.shape.size() - 2], cols = x.shape[x.shape.size() - 1];
  const uint32_t n = static_cast<uint32_t>(x.numel());
  triangle_kernel<<<blocks_for(n), kThreads, 0, device_stream()>>>(out.base(), out.dtype, x.base(), x.dtype, n,
                                                                   static_cast<uint32_t>(rows),
                                                                   static_cast<uint32_t>(cols), diagonal, lower);
  return launched(what);
}

}  // namespace tessera_cuda
