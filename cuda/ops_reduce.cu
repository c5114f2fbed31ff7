// ops_reduce.cu: sum/mean/max/min and argmax/argmin over any set of dims, softmax/logSoftmax and cumsum
// along one dim.
//
// reduce: x arrives as a view with its dims ordered [kept..., reduced...]; both groups are coalesced
// separately. Output o reduces x[kept_offset(o) + red_offset(r)] over r < R. Two shapes of work:
//   row kernel     one block per output, its threads striding over r, then a warp-shuffle + shared-memory
//                  tree. Used when the innermost reduced dim is contiguous (coalesced reads along r) or
//                  when there are too few outputs to fill the GPU with one thread each.
//   column kernel  one thread per output, a sequential loop over r; neighbouring threads read
//                  neighbouring kept elements (coalesced when the innermost kept dim is contiguous).
// Accumulation is float32 (sum), with max/min propagating NaN; mean divides by R at the end (R = 0 gives
// NaN, like the reference). argmax/argmin carry (value, index) pairs and keep the first index on ties; NaN
// wins and the first NaN is reported (lib/backends/js/reduce.ts). Tree order differs from the
// reference's sequential float64 sum: within tolerance (2e-5 relative for float32).
//
// softmax/cumsum on a dense x split as (outer, size, inner):
//   inner == 1   one warp per row: max, sum of exp(x - max), write (three passes; rows stay in L1/L2);
//                cumsum scans 32 elements at a time with shuffles and carries the running total.
//   inner > 1    one thread per (outer, inner) column looping over size; adjacent threads read adjacent
//                elements, so every pass is coalesced.
// A row of all -inf gives NaN, as in the reference and torch.
// Roofline: memory-bound; reduce reads x once; softmax reads it up to three times (from cache after the
// first for rows that fit) and writes once.
#include <cmath>

#include "ops_device.cuh"

namespace tessera_cuda {

namespace {

struct RedArgs {
  const char* x;
  int x_dt;
  char* out;
  int out_dt;
  int nk, nr;
  uint32_t kshape[kMaxDims], kstride[kMaxDims];
  uint32_t rshape[kMaxDims], rstride[kMaxDims];
  uint32_t n_out, R;
};

// ---- reducers: T accumulator, init, add one element (value, reduced index), combine two accumulators.
struct SumR {
  using T = float;
  __device__ static T init() { return 0.f; }
  __device__ static T add(T a, float v, uint32_t) { return a + v; }
  __device__ static T comb(T a, T b) { return a + b; }
  __device__ static T shfl(T a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
};
struct MaxR {
  using T = float;
  __device__ static T init() { return -INFINITY; }
  __device__ static T add(T a, float v, uint32_t) { return nan_max(a, v); }
  __device__ static T comb(T a, T b) { return nan_max(a, b); }
  __device__ static T shfl(T a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
};
struct MinR {
  using T = float;
  __device__ static T init() { return INFINITY; }
  __device__ static T add(T a, float v, uint32_t) { return nan_min(a, v); }
  __device__ static T comb(T a, T b) { return nan_min(a, b); }
  __device__ static T shfl(T a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
};

struct ValIdx {
  float v;
  uint32_t i;  // UINT32_MAX: empty
};
template <bool kLargest>
struct ArgR {
  using T = ValIdx;
  __device__ static T init() { return {0.f, 0xffffffffu}; }
  // The better of a and b: NaN first, then the larger (smaller) value, then the lower index.
  __device__ static T comb(T a, T b) {
    if (a.i == 0xffffffffu) return b;
    if (b.i == 0xffffffffu) return a;
    const bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn) {
      if (an && bn) return a.i < b.i ? a : b;
      return an ? a : b;
    }
    if (a.v != b.v) return (kLargest ? a.v > b.v : a.v < b.v) ? a : b;
    return a.i < b.i ? a : b;
  }
  __device__ static T add(T a, float v, uint32_t r) { return comb(a, T{v, r}); }
  __device__ static T shfl(T a, int o) {
    return {__shfl_xor_sync(0xffffffffu, a.v, o), __shfl_xor_sync(0xffffffffu, a.i, o)};
  }
};

enum class Fin { none, mean, index };

template <class R, Fin F>
__device__ __forceinline__ void finish(const RedArgs& p, uint32_t o, typename R::T acc) {
  if constexpr (F == Fin::index) {
    reinterpret_cast<int32_t*>(p.out)[o] = static_cast<int32_t>(acc.i == 0xffffffffu ? 0 : acc.i);
  } else if constexpr (F == Fin::mean) {
    store_f32(p.out, p.out_dt, o, acc / static_cast<float>(p.R));
  } else {
    store_f32(p.out, p.out_dt, o, acc);
  }
}

template <class R>
__device__ __forceinline__ typename R::T warp_reduce(typename R::T a) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) a = R::comb(a, R::shfl(a, o));
  return a;
}

template <class R, Fin F>
__global__ void reduce_rows_kernel(RedArgs p) {
  using T = typename R::T;
  __shared__ T partial[32];
  for (uint32_t o = blockIdx.x; o < p.n_out; o += gridDim.x) {
    const uint32_t base = strided_offset(o, p.nk, p.kshape, p.kstride);
    T acc = R::init();
    for (uint32_t r = threadIdx.x; r < p.R; r += blockDim.x) {
      const uint32_t off = p.nr == 1 ? r * p.rstride[0] : strided_offset(r, p.nr, p.rshape, p.rstride);
      acc = R::add(acc, load_f32(p.x, p.x_dt, base + off), r);
    }
    acc = warp_reduce<R>(acc);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = lane < int(blockDim.x / 32) ? partial[lane] : R::init();
      acc = warp_reduce<R>(acc);
      if (lane == 0) finish<R, F>(p, o, acc);
    }
    __syncthreads();  // partial[] is reused by the next output
  }
}

template <class R, Fin F>
__global__ void reduce_cols_kernel(RedArgs p) {
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t o = size_t(blockIdx.x) * blockDim.x + threadIdx.x; o < p.n_out; o += step) {
    const uint32_t base = strided_offset(static_cast<uint32_t>(o), p.nk, p.kshape, p.kstride);
    typename R::T acc = R::init();
    for (uint32_t r = 0; r < p.R; ++r) {
      const uint32_t off = p.nr == 1 ? r * p.rstride[0] : strided_offset(r, p.nr, p.rshape, p.rstride);
      acc = R::add(acc, load_f32(p.x, p.x_dt, base + off), r);
    }
    finish<R, F>(p, static_cast<uint32_t>(o), acc);
  }
}

template <class R, Fin F>
Status launch_reduce(const RedArgs& p, const char* what) {
  // Rows when reads along r are contiguous, or when one thread per output would leave SMs idle.
  const bool rows = p.nr > 0 && (p.rstride[p.nr - 1] == 1 || p.n_out < size_t(device_sm_count()) * 256);
  if (rows && p.R > 1) {
    const unsigned grid = static_cast<unsigned>(std::min<size_t>(p.n_out, size_t(65535) * 16));
    reduce_rows_kernel<R, F><<<grid, kThreads, 0, device_stream()>>>(p);
  } else {
    reduce_cols_kernel<R, F><<<blocks_for(p.n_out), kThreads, 0, device_stream()>>>(p);
  }
  return launched(what);
}

// Coalesces dims [begin, end) of x into shape/stride (size-1 dims dropped); false past kMaxDims.
bool group(const TensorRef& x, size_t begin, size_t end, int* rank, uint32_t* shape, uint32_t* stride) {
  TensorRef part;
  part.shape.assign(x.shape.begin() + begin, x.shape.begin() + end);
  part.strides.assign(x.strides.begin() + begin, x.strides.begin() + end);
  const TensorRef* refs[] = {&part};
  Layout<1> lay;
  if (!coalesce<1>(refs, &lay)) return false;
  *rank = lay.rank;
  for (int d = 0; d < lay.rank; ++d) {
    shape[d] = lay.shape[d];
    stride[d] = lay.stride[0][d];
  }
  return true;
}

// ---- softmax / cumsum

struct RowArgs {
  const char* x;
  int x_dt;
  char* out;
  int out_dt;
  uint32_t outer, size, inner;
};

template <bool kLog>
__global__ void softmax_rows_kernel(RowArgs p) {
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  for (size_t row = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < p.outer; row += warps) {
    const uint32_t base = static_cast<uint32_t>(row) * p.size;
    float m = -INFINITY;
    for (uint32_t k = lane; k < p.size; k += 32) m = nan_max(m, load_f32(p.x, p.x_dt, base + k));
    m = warp_max(m);
    float s = 0.f;
    for (uint32_t k = lane; k < p.size; k += 32) s += expf(load_f32(p.x, p.x_dt, base + k) - m);
    s = warp_sum(s);
    const float lse = m + logf(s);
    for (uint32_t k = lane; k < p.size; k += 32) {
      const float v = load_f32(p.x, p.x_dt, base + k);
      store_f32(p.out, p.out_dt, base + k, kLog ? v - lse : expf(v - m) / s);
    }
  }
}

template <bool kLog>
__global__ void softmax_cols_kernel(RowArgs p) {
  const size_t cols = size_t(p.outer) * p.inner;
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += step) {
    const uint32_t base = static_cast<uint32_t>((c / p.inner) * p.size * p.inner + c % p.inner);
    float m = -INFINITY;
    for (uint32_t k = 0; k < p.size; ++k) m = nan_max(m, load_f32(p.x, p.x_dt, base + k * p.inner));
    float s = 0.f;
    for (uint32_t k = 0; k < p.size; ++k) s += expf(load_f32(p.x, p.x_dt, base + k * p.inner) - m);
    const float lse = m + logf(s);
    for (uint32_t k = 0; k < p.size; ++k) {
      const float v = load_f32(p.x, p.x_dt, base + k * p.inner);
      store_f32(p.out, p.out_dt, base + k * p.inner, kLog ? v - lse : expf(v - m) / s);
    }
  }
}

__global__ void cumsum_rows_kernel(RowArgs p) {
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  for (size_t row = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < p.outer; row += warps) {
    const uint32_t base = static_cast<uint32_t>(row) * p.size;
    float carry = 0.f;
    for (uint32_t k0 = 0; k0 < p.size; k0 += 32) {
      const uint32_t k = k0 + lane;
      float v = k < p.size ? load_f32(p.x, p.x_dt, base + k) : 0.f;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const float up = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += up;
      }
      v += carry;
      if (k < p.size) store_f32(p.out, p.out_dt, base + k, v);
      carry = __shfl_sync(0xffffffffu, v, 31);
    }
  }
}

__global__ void cumsum_cols_kernel(RowArgs p) {
  const size_t cols = size_t(p.outer) * p.inner;
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += step) {
    const uint32_t base = static_cast<uint32_t>((c / p.inner) * p.size * p.inner + c % p.inner);
    float acc = 0.f;
    for (uint32_t k = 0; k < p.size; ++k) {
      acc += load_f32(p.x, p.x_dt, base + k * p.inner);
      store_f32(p.out, p.out_dt, base + k * p.inner, acc);
    }
  }
}

Status row_args(const TensorRef& out, const TensorRef& x, size_t dim, const char* what, RowArgs* p) {
  Status s = check_ref(x, what);
  if (!s.ok()) return s;
  if (!x.dense() || dim >= x.shape.size()) return status_error(Code::arg, std::string(what) + ": x must be dense and dim in range");
  s = check_out(out, x.numel(), what);
  if (!s.ok()) return s;
  size_t outer = 1, inner = 1;
  for (size_t d = 0; d < dim; ++d) outer *= x.shape[d];
  for (size_t d = dim + 1; d < x.shape.size(); ++d) inner *= x.shape[d];
  *p = RowArgs{x.base(), x.dtype, out.base(), out.dtype, static_cast<uint32_t>(outer),
               static_cast<uint32_t>(x.shape[dim]), static_cast<uint32_t>(inner)};
  return device_ready();
}

// Blocks of 8 warps, one warp per row.
unsigned warp_rows_grid(size_t rows) {
  return static_cast<unsigned>(std::min<size_t>((rows + 7) / 8, size_t(std::max(1, device_sm_count())) * 64));
}

}  // namespace

Status reduce(const std::string& op, const TensorRef& out, const TensorRef& x, size_t n_kept) {
  const std::string what = "reduce " + op;
  Status s = check_ref(x, what.c_str());
  if (!s.ok()) return s;
  if (n_kept > x.shape.size()) return status_error(Code::arg, what + ": n_kept exceeds the rank");
  RedArgs p{};
  if (!group(x, 0, n_kept, &p.nk, p.kshape, p.kstride) || !group(x, n_kept, x.shape.size(), &p.nr, p.rshape, p.rstride)) {
    return status_error(Code::arg, what + ": more than 8 dims remain after merging contiguous dims");
  }
  size_t n_out = 1, R = 1;
  for (size_t d = 0; d < x.shape.size(); ++d) (d < n_kept ? n_out : R) *= x.shape[d];
  const bool arg = op == "argmax" || op == "argmin";
  s = check_out(out, n_out, what.c_str(), !arg);
  if (!s.ok()) return s;
  if (arg && out.dtype != kI32) return status_error(Code::arg, what + ": output must be int32");
  if (arg && R == 0) return status_error(Code::arg, what + ": empty reduction");
  if (n_out == 0) return status_ok();
  s = device_ready();
  if (!s.ok()) return s;
  p.x = x.base();
  p.x_dt = x.dtype;
  p.out = out.base();
  p.out_dt = out.dtype;
  p.n_out = static_cast<uint32_t>(n_out);
  p.R = static_cast<uint32_t>(R);
  if (op == "sum") return launch_reduce<SumR, Fin::none>(p, what.c_str());
  if (op == "mean") return launch_reduce<SumR, Fin::mean>(p, what.c_str());
  if (op == "max") return launch_reduce<MaxR, Fin::none>(p, what.c_str());
  if (op == "min") return launch_reduce<MinR, Fin::none>(p, what.c_str());
  if (op == "argmax") return launch_reduce<ArgR<true>, Fin::index>(p, what.c_str());
  if (op == "argmin") return launch_reduce<ArgR<false>, Fin::index>(p, what.c_str());
  return status_error(Code::arg, "reduce: unknown op '" + op + "'");
}

Status softmax(const TensorRef& out, const TensorRef& x, size_t dim, bool log) {
  const char* what = log ? "logSoftmax" : "softmax";
  RowArgs p;
  Status s = row_args(out, x, dim, what, &p);
  if (!s.ok() || x.numel() == 0) return s;
  if (p.inner == 1) {
    if (log) softmax_rows_kernel<true><<<warp_rows_grid(p.outer), kThreads, 0, device_stream()>>>(p);
    else softmax_rows_kernel<false><<<warp_rows_grid(p.outer), kThreads, 0, device_stream()>>>(p);
  } else {
    const unsigned grid = blocks_for(size_t(p.outer) * p.inner);
    if (log) softmax_cols_kernel<true><<<grid, kThreads, 0, device_stream()>>>(p);
    else softmax_cols_kernel<false><<<grid, kThreads, 0, device_stream()>>>(p);
  }
  return launched(what);
}

Status cumsum(const TensorRef& out, const TensorRef& x, size_t dim) {
  RowArgs p;
  Status s = row_args(out, x, dim, "cumsum", &p);
  if (!s.ok() || x.numel() == 0) return s;
  if (p.inner == 1) {
    cumsum_rows_kernel<<<warp_rows_grid(p.outer), kThreads, 0, device_stream()>>>(p);
  } else {
    cumsum_cols_kernel<<<blocks_for(size_t(p.outer) * p.inner), kThreads, 0, device_stream()>>>(p);
  }
  return launched("cumsum");
}

}  // namespace tessera_cuda
