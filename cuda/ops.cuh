// ops.cuh: the tensor kernels of the CUDA backend, as the N-API glue (ops_addon.cc) calls them.
//
// Every operand is a TensorRef: a device buffer, a dtype, an element offset and a shape with element
// strides (strides 0 for broadcast dims; never negative). check_ref() validates a ref against its buffer
// here, on the CUDA side, whatever TypeScript checked: the farthest element it can reach lies inside the
// buffer, and every element offset fits in 32 bits (tensors have fewer than 2^32 elements, so kernels
// index with uint32 and form byte addresses in 64 bits).
// Outputs are written in full; inputs are never written. An output must not overlap an input, except
// that an elementwise output may be the very same elements as an input with the same layout.
// Math is float32 whatever the storage dtype (float16/bfloat16 are widened on load and rounded to
// nearest-even on store). All work is queued on the backend stream; every entry returns at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "device.cuh"
#include "memory.cuh"

namespace tessera_cuda {

// Storage dtypes kernels read and write (codes shared with lib/backends/cuda/ops.ts).
enum DType : int { kF32 = 0, kF16 = 1, kBF16 = 2, kI32 = 3, kU8 = 4, kI8 = 5, kBool = 6, kDTypeCount = 7 };
size_t dtype_size(int dtype);
inline bool is_float_dtype(int d) { return d == kF32 || d == kF16 || d == kBF16; }

// Dims a kernel indexes after coalescing (merging dims that are contiguous in every operand).
constexpr int kMaxDims = 8;

struct TensorRef {
  DeviceBuffer* buf = nullptr;
  int dtype = kF32;
  size_t offset = 0;            // elements
  std::vector<size_t> shape;
  std::vector<size_t> strides;  // elements, one per dim
  size_t numel() const;
  bool dense() const;           // row-major contiguous from offset (size-1 dims may have any stride)
  char* base() const;           // device address of element 0 (offset applied)
};

// Bounds, dtype and 32-bit checks described above; `what` names the operand in the message.
Status check_ref(const TensorRef& t, const char* what);

// ---- elementwise (ops_elementwise.cu); inputs have out's shape (broadcast views: stride 0).
// op: neg abs exp log sqrt rsqrt sin cos tanh sigmoid relu silu gelu gelu_tanh square
Status ew_unary(const std::string& op, const TensorRef& out, const TensorRef& x);
// op: add sub mul div pow maximum minimum
Status ew_binary(const std::string& op, const TensorRef& out, const TensorRef& a, const TensorRef& b);
// out = cond != 0 ? a : b (NaN counts as nonzero)
Status ew_where(const TensorRef& out, const TensorRef& cond, const TensorRef& a, const TensorRef& b);
// out = x converted to out's dtype (bit copy when the dtypes match); any strides on both sides.
Status ew_copy(const TensorRef& out, const TensorRef& x);
// tril (lower) / triu over the last two dims of a dense x; out dense, same shape.
Status ew_triangle(const TensorRef& out, const TensorRef& x, long long diagonal, bool lower);

// ---- reductions (ops_reduce.cu)
// x's dims are ordered [kept..., reduced...] (n_kept kept); out is dense with the kept elements in
// row-major order. op: sum mean max min (float out) or argmax argmin (int32 out: the row-major index over
// the reduced dims, the first one on ties, NaN counting as the extreme).
Status reduce(const std::string& op, const TensorRef& out, const TensorRef& x, size_t n_kept);
// Along `dim` of a dense x; out dense, same shape.
Status softmax(const TensorRef& out, const TensorRef& x, size_t dim, bool log);
Status cumsum(const TensorRef& out, const TensorRef& x, size_t dim);

// ---- layer ops (ops_nn.cu); x dense, rows over the last dim; weight/bias may be null.
Status rms_norm(const TensorRef& out, const TensorRef& x, const TensorRef* weight, float eps);
Status layer_norm(const TensorRef& out, const TensorRef& x, const TensorRef* weight, const TensorRef* bias,
                  float eps);
// ids: dense integer tensor of any shape; table [V, D] (any strides); out dense [...ids, D].
Status embedding(const TensorRef& out, const TensorRef& ids, const TensorRef& table);
// x dense [..., S, D]; positions[S] and inv_freq[rotary_dim / 2] are host float64 arrays, uploaded
// without a wait (copy_h2d_queued).
Status rope(const TensorRef& out, const TensorRef& x, const double* positions, size_t n_positions,
            const double* inv_freq, size_t n_freq, size_t rotary_dim, bool interleaved);

// ---- matmul (ops_matmul.cu): a [...batch, M, K] @ b [...batch, K, N] (+ bias [N]) -> out dense
// [...batch, M, N]. a and b are views with any strides (a transposed or broadcast operand needs no copy).
// float16 x float16 and bfloat16 x bfloat16 run on the tensor cores (float32 accumulation); every other
// combination runs float32 FMA.
Status matmul(const TensorRef& out, const TensorRef& a, const TensorRef& b, const TensorRef* bias);

}  // namespace tessera_cuda
