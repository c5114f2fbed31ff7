// attention: fused scaled-dot-product attention, f32, flash-style (see attention.cc).
#pragma once

#include <cstdint>
#include <limits>

namespace tessera {

struct attention_f32_shape {
  int64_t batch;
  int64_t heads_q;
  int64_t heads_kv;  // heads_q % heads_kv == 0 (GQA/MQA)
  int64_t seq_q;
  int64_t seq_k;
  int64_t dim;    // D: q/k head size
  int64_t dim_v;  // Dv: v/out head size
  float scale;
  bool causal;
  int64_t kv_offset;  // absolute position of query 0 (causal only)
};

// q [B][Hq][Sq][D], k [B][Hkv][Sk][D], v [B][Hkv][Sk][Dv], out [B][Hq][Sq][Dv],
// all contiguous. out is overwritten (never read). Shapes already validated.
void attention_f32(float* out, const float* q, const float* k, const float* v,
                   const attention_f32_shape& shape);

namespace detail {

constexpr int k_bq_max = 96;  // query rows per task (4 slivers of 24 in the prefill kernel)

// Row kernels: the three inner steps of one (query block, key block) pair; ld_s is the
// row stride of the score tile, a multiple of 8 that is >= keys rounded up to 8.
struct attention_kernels {
  // s[i][j] = scale * dot(q_i, k_j) for i < rows, j < keys (q, k rows of d floats).
  void (*scores)(float* s, int64_t ld_s, const float* q, int rows, const float* k, int keys,
                 int64_t d, float scale);
  // Online-softmax step per row: m = running max, l = running sum. Replaces
  // s[i][0..keys) by p = exp(s - m_new) and writes alpha[i] = exp(m_old - m_new).
  // Rows whose running max is still -inf (nothing visible yet) get p = 0, alpha = 1.
  void (*softmax)(float* s, int64_t ld_s, int rows, int keys, float* m, float* l,
                  float* alpha);
  // o[i][:] = alpha[i] * o[i][:] + sum_j p[i][j] * v[j][:] (rows of dv floats).
  void (*pv)(float* o, int64_t dv, const float* p, int64_t ld_p, int rows, const float* v,
             int keys, const float* alpha);
  // Optional (nullptr: not available): one whole task of rows <= k_bq_max query rows
  // (o, q rows of Dv / D floats) against one kv head's k, v; row i sits at position
  // pos0 + i * pos_step. Writes the finished (normalised) output rows.
  void (*prefill)(float* o, const float* q, const float* k, const float* v, int rows,
                  int64_t pos0, int64_t pos_step, const attention_f32_shape& shape);
};

// A row that met a NaN score: P, running max/sum and the rescale factor all become NaN, so the
// output row is NaN as in PyTorch (instead of the NaN being dropped by max()).
inline void mark_row_nan(float* row, int n, float& m, float& l, float& alpha) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int j = 0; j < n; ++j) row[j] = nan;
  m = nan;
  l = nan;
  alpha = nan;
}

attention_kernels attention_kernels_avx2();  // {nullptr...} when not built for x86-64

}  // namespace detail

}  // namespace tessera
