// ops_nn.cu: layer ops: RMSNorm, LayerNorm, embedding lookup, rotary position embedding.
//
// Norms: x dense [rows, D] (the last dim); one warp per row, 8 rows per block. Pass 1 accumulates the
// statistics in float32 per lane and reduces with shuffles; LayerNorm makes a second pass for the biased
// variance around the mean (the reference's two-pass formula, no E[x^2] - mean^2 cancellation); the last
// pass writes x * inv (* w) (+ b). Rows re-read come from L1/L2. Memory-bound: one read and one write of
// the row from DRAM for rows that stay in cache.
// Embedding: one thread per output element, out[i, j] = table[ids[i], j]; same-dtype rows are copied bit for
// bit (the value passes through float32, which is exact for float16/bfloat16/float32). An id outside
// [0, V) (the op layer rejects those) writes NaN instead of reading out of bounds.
// RoPE: one thread per output element; the angle pos * inv_freq is formed in float64 and reduced mod 2*pi
// there, then sincosf in float32: positions in the tens of thousands keep float32 accuracy (a float32
// angle would lose ~1e-3 at 4096 * 1). Pairs are (i, i + half) (rotate-half, HF Llama) or (2i, 2i + 1)
// (interleaved, GPT-J); dims past rotary_dim pass through. positions and inv_freq stay on the device between
// calls (rope_tables): only a call with different tables uploads them, without a stream wait
// (copy_h2d_queued), so repeated calls (q and k of every layer) launch the kernel and nothing else.
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "ops_device.cuh"

namespace tessera_cuda {

namespace {

struct NormArgs {
  const char* x;
  int x_dt;
  const char* w;  // null: no weight
  int w_dt;
  uint32_t w_stride;
  const char* b;  // null: no bias
  int b_dt;
  uint32_t b_stride;
  char* out;
  int out_dt;
  uint32_t rows, D;
  float eps;
};

template <bool kLayer>
__global__ void norm_kernel(NormArgs p) {
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  for (size_t row = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < p.rows; row += warps) {
    const uint32_t base = static_cast<uint32_t>(row) * p.D;
    float mean = 0.f, inv;
    if constexpr (kLayer) {
      float s = 0.f;
      for (uint32_t i = lane; i < p.D; i += 32) s += load_f32(p.x, p.x_dt, base + i);
      mean = warp_sum(s) / static_cast<float>(p.D);
      float v = 0.f;
      for (uint32_t i = lane; i < p.D; i += 32) {
        const float d = load_f32(p.x, p.x_dt, base + i) - mean;
        v += d * d;
      }
      inv = 1.f / sqrtf(warp_sum(v) / static_cast<float>(p.D) + p.eps);
    } else {
      float ss = 0.f;
      for (uint32_t i = lane; i < p.D; i += 32) {
        const float v = load_f32(p.x, p.x_dt, base + i);
        ss += v * v;
      }
      inv = 1.f / sqrtf(warp_sum(ss) / static_cast<float>(p.D) + p.eps);
    }
    for (uint32_t i = lane; i < p.D; i += 32) {
      float y = (load_f32(p.x, p.x_dt, base + i) - mean) * inv;
      if (p.w) y *= load_f32(p.w, p.w_dt, i * p.w_stride);
      if (p.b) y += load_f32(p.b, p.b_dt, i * p.b_stride);
      store_f32(p.out, p.out_dt, base + i, y);
    }
  }
}

__global__ void embedding_kernel(char* out, int out_dt, const char* ids, int ids_dt, const char* table,
                                 int table_dt, uint32_t s0, uint32_t s1, uint32_t n, uint32_t V, uint32_t D) {
  const size_t total = size_t(n) * D;
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t e = size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const uint32_t i = static_cast<uint32_t>(e / D), j = static_cast<uint32_t>(e % D);
    // int32 ids are read as integers, not through float32 (2^24 and up would round); int8/uint8 are exact.
    const long long id = ids_dt == kI32 ? reinterpret_cast<const int32_t*>(ids)[i]
                                        : static_cast<long long>(load_f32(ids, ids_dt, i));
    const float v = (id >= 0 && id < V) ? load_f32(table, table_dt, static_cast<uint32_t>(id) * s0 + j * s1) : NAN;
    store_f32(out, out_dt, static_cast<uint32_t>(e), v);
  }
}

constexpr double kTwoPi = 6.283185307179586476925286766559;

__global__ void rope_kernel(char* out, int out_dt, const char* x, int x_dt, const double* tables, uint32_t S,
                            uint32_t half, uint32_t rows, uint32_t D, bool interleaved) {
  const double* positions = tables;
  const double* inv_freq = tables + S;
  const size_t total = size_t(rows) * D;
  const size_t step = size_t(gridDim.x) * blockDim.x;
  for (size_t e = size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const uint32_t row = static_cast<uint32_t>(e / D), j = static_cast<uint32_t>(e % D);
    const uint32_t base = row * D;
    float y;
    if (j >= 2 * half) {
      y = load_f32(x, x_dt, base + j);
    } else {
      // pair index i, this element's partner, and whether it is the pair's first member
      const uint32_t i = interleaved ? j / 2 : (j < half ? j : j - half);
      const bool first = interleaved ? (j % 2 == 0) : (j < half);
      const uint32_t j0 = interleaved ? 2 * i : i, j1 = interleaved ? 2 * i + 1 : i + half;
      double ang = positions[row % S] * inv_freq[i];
      ang -= kTwoPi * rint(ang / kTwoPi);
      float sn, cs;
      sincosf(static_cast<float>(ang), &sn, &cs);
      const float x0 = load_f32(x, x_dt, base + j0), x1 = load_f32(x, x_dt, base + j1);
      y = first ? x0 * cs - x1 * sn : x1 * cs + x0 * sn;
    }
    store_f32(out, out_dt, static_cast<uint32_t>(e), y);
  }
}

unsigned warp_rows_grid(size_t rows) {
  return static_cast<unsigned>(std::min<size_t>((rows + 7) / 8, size_t(std::max(1, device_sm_count())) * 64));
}

Status norm_common(const char* what, const TensorRef& out, const TensorRef& x, const TensorRef* w,
                   const TensorRef* b, float eps, NormArgs* p) {
  Status s = check_ref(x, what);
  if (!s.ok()) return s;
  if (x.shape.empty() || !x.dense()) return status_error(Code::arg, std::string(what) + ": x must be dense with 1+ dims");
  s = check_out(out, x.numel(), what);
  if (!s.ok()) return s;
  const size_t D = x.shape.back();
  *p = NormArgs{};
  p->x = x.base();
  p->x_dt = x.dtype;
  p->out = out.base();
  p->out_dt = out.dtype;
  p->rows = static_cast<uint32_t>(D == 0 ? 0 : x.numel() / D);
  p->D = static_cast<uint32_t>(D);
  p->eps = eps;
  for (int k = 0; k < 2; ++k) {
    const TensorRef* t = k == 0 ? w : b;
    if (t == nullptr) continue;
    s = check_ref(*t, k == 0 ? "weight" : "bias");
    if (!s.ok()) return s;
    if (t->shape.size() != 1 || t->shape[0] != D) return status_error(Code::arg, std::string(what) + ": weight/bias must be [D]");
    if (k == 0) {
      p->w = t->base();
      p->w_dt = t->dtype;
      p->w_stride = static_cast<uint32_t>(t->strides[0]);
    } else {
      p->b = t->base();
      p->b_dt = t->dtype;
      p->b_stride = static_cast<uint32_t>(t->strides[0]);
    }
  }
  return device_ready();
}

}  // namespace

Status rms_norm(const TensorRef& out, const TensorRef& x, const TensorRef* weight, float eps) {
  NormArgs p;
  Status s = norm_common("rmsNorm", out, x, weight, nullptr, eps, &p);
  if (!s.ok() || p.rows == 0) return s;
  norm_kernel<false><<<warp_rows_grid(p.rows), kThreads, 0, device_stream()>>>(p);
  return launched("rmsNorm");
}

Status layer_norm(const TensorRef& out, const TensorRef& x, const TensorRef* weight, const TensorRef* bias,
                  float eps) {
  NormArgs p;
  Status s = norm_common("layerNorm", out, x, weight, bias, eps, &p);
  if (!s.ok() || p.rows == 0) return s;
  norm_kernel<true><<<warp_rows_grid(p.rows), kThreads, 0, device_stream()>>>(p);
  return launched("layerNorm");
}

Status embedding(const TensorRef& out, const TensorRef& ids, const TensorRef& table) {
  Status s = check_ref(ids, "embedding ids");
  if (!s.ok()) return s;
  s = check_ref(table, "embedding table");
  if (!s.ok()) return s;
  if (!ids.dense() || table.shape.size() != 2) return status_error(Code::arg, "embedding: ids must be dense, table 2-D");
  if (ids.dtype != kI32 && ids.dtype != kU8 && ids.dtype != kI8) return status_error(Code::arg, "embedding: ids must be an integer dtype");
  const size_t n = ids.numel(), V = table.shape[0], D = table.shape[1];
  s = check_out(out, n * D, "embedding");
  if (!s.ok() || n * D == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  embedding_kernel<<<blocks_for(n * D), kThreads, 0, device_stream()>>>(
      out.base(), out.dtype, ids.base(), ids.dtype, table.base(), table.dtype, static_cast<uint32_t>(table.strides[0]),
      static_cast<uint32_t>(table.strides[1]), static_cast<uint32_t>(n), static_cast<uint32_t>(V), static_cast<uint32_t>(D));
  return launched("embedding");
}

// rope's tables (S positions, then the inverse frequencies, as double) stay on the device between calls, with
// a host copy of what was uploaded: a model applies rope to q and k of every layer with the same tables, and
// uploading them each call put a host-staged copy (host work, then a DMA) inside every rope call. A call with
// other tables replaces them; the old buffer is freed stream-ordered (kernels queued before still read it).
static Status rope_tables(const double* positions, size_t S, const double* inv_freq, size_t n_freq, const double** dev) {
  struct Cache {
    std::mutex mu;
    DeviceBuffer buf;
    std::vector<double> host;
  };
  static Cache* cache = new Cache();  // never destroyed: finalizers may still run rope at exit
  std::lock_guard<std::mutex> lock(cache->mu);
  std::vector<double>& h = cache->host;
  const bool same = cache->buf.ptr != nullptr && h.size() == S + n_freq &&
                    std::memcmp(h.data(), positions, S * sizeof(double)) == 0 &&
                    (n_freq == 0 || std::memcmp(h.data() + S, inv_freq, n_freq * sizeof(double)) == 0);
  if (!same) {
    if (cache->buf.ptr != nullptr) buffer_free(&cache->buf);
    cache->buf = DeviceBuffer{};
    h.clear();
    DeviceBuffer fresh;
    Status s = buffer_alloc(&fresh, (S + n_freq) * sizeof(double));
    if (!s.ok()) return s;
    s = copy_h2d_queued(&fresh, 0, positions, S * sizeof(double));
    if (s.ok() && n_freq > 0) s = copy_h2d_queued(&fresh, S * sizeof(double), inv_freq, n_freq * sizeof(double));
    if (!s.ok()) {
      buffer_free(&fresh);
      return s;
    }
    cache->buf = fresh;
    h.assign(positions, positions + S);
    h.insert(h.end(), inv_freq, inv_freq + n_freq);
  }
  *dev = static_cast<const double*>(cache->buf.ptr);
  return status_ok();
}

Status rope(const TensorRef& out, const TensorRef& x, const double* positions, size_t n_positions,
            const double* inv_freq, size_t n_freq, size_t rotary_dim, bool interleaved) {
  Status s = check_ref(x, "rope");
  if (!s.ok()) return s;
  if (x.shape.size() < 2 || !x.dense()) return status_error(Code::arg, "rope: x must be dense [..., S, D]");
  const size_t S = x.shape[x.shape.size() - 2], D = x.shape.back();
  if (n_positions != S || rotary_dim % 2 != 0 || rotary_dim > D || n_freq != rotary_dim / 2) {
    return status_error(Code::arg, "rope: positions must have S entries, invFreq rotaryDim/2, rotaryDim even and <= D");
  }
  s = check_out(out, x.numel(), "rope");
  if (!s.ok() || x.numel() == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  const double* tables = nullptr;
  s = rope_tables(positions, S, inv_freq, n_freq, &tables);
  if (s.ok()) {
    const size_t rows = x.numel() / D;
    rope_kernel<<<blocks_for(x.numel()), kThreads, 0, device_stream()>>>(
        out.base(), out.dtype, x.base(), x.dtype, tables, static_cast<uint32_t>(S),
        static_cast<uint32_t>(n_freq), static_cast<uint32_t>(rows), static_cast<uint32_t>(D), interleaved);
    s = launched("rope");
  }
  return s;
}

}  // namespace tessera_cuda
