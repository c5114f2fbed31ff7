// attention: out = softmax(scale * q k^T + mask) v, f32, flash-attention style.
//
// Algorithm: one task per (batch, query head, block of BQ=48 query rows). A
// task walks the key/value rows of its kv head in blocks of BK=64 keys:
//   S = scale * Q_blk K_blk^T          (BQ x BK tile on the stack, 12 KB)
//   causal mask: key j hidden from query i when j > kv_offset + i  (S = -inf)
//   online softmax: m_new = max(m, rowmax S); P = exp(S - m_new);
//                   alpha = exp(m - m_new); l = alpha * l + rowsum P
//   O = alpha * O + P V_blk            (O accumulates in the task's out rows)
// then O /= l. The Sq x Sk score matrix is never materialised; memory is O(BQ*BK)
// per thread. Keys past the causal frontier of a block's last row are never
// visited. GQA/MQA: query head h reads kv head h / (Hq / Hkv) in place.
// A query row with no visible key (causal, kv_offset + i < 0) outputs zeros.
//
// Layouts (PyTorch SDPA): q [B][Hq][Sq][D], k [B][Hkv][Sk][D], v [B][Hkv][Sk][Dv],
// out [B][Hq][Sq][Dv], contiguous; out is overwritten and never read first.
// Parallelism: tasks are independent and each output row belongs to one task, so
// results are bit-identical for any thread count. Causal blocks are issued
// last-block-first (they have the most keys) to shorten the tail.
// Kernels: AVX2+FMA in attention_avx2.cc (3x4 dot tiles, polynomial exp, 6x16
// P.V tiles); portable loops below. Tolerance vs float64: ~1e-6 relative.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_features.h"
#include "thread_pool.h"

namespace tessera {

namespace {

constexpr int k_bq = 48;
constexpr int k_bk = 64;  // largest key block; also the score tile row stride (multiple of 8)

// Key block: as many keys as keep one K block and one V block within ~16 KB
// each (L1-resident while the whole query block uses them), 8..64, multiple of 8.
int key_block(int64_t d, int64_t dv) {
  const int64_t widest = std::max(d, dv);
  const int64_t fit = (16384 / 4 / widest) & ~int64_t{7};
  return static_cast<int>(std::clamp<int64_t>(fit, 8, k_bk));
}
constexpr float k_neg_inf = -std::numeric_limits<float>::infinity();

void scores_generic(float* s, int64_t ld_s, const float* q, int rows, const float* k, int keys,
                    int64_t d, float scale) {
  for (int i = 0; i < rows; ++i) {
    const float* qi = q + i * d;
    for (int j = 0; j < keys; ++j) {
      const float* kj = k + j * d;
      float acc = 0.0f;
      for (int64_t x = 0; x < d; ++x) acc += qi[x] * kj[x];
      s[i * ld_s + j] = scale * acc;
    }
  }
}

void softmax_generic(float* s, int64_t ld_s, int rows, int keys, float* m, float* l,
                     float* alpha) {
  for (int i = 0; i < rows; ++i) {
    float* row = s + i * ld_s;
    float m_new = m[i];
    for (int j = 0; j < keys; ++j) m_new = std::max(m_new, row[j]);
    if (m_new == k_neg_inf) {
      alpha[i] = 1.0f;
      std::fill(row, row + keys, 0.0f);
      continue;
    }
    alpha[i] = std::exp(m[i] - m_new);
    float sum = 0.0f;
    for (int j = 0; j < keys; ++j) {
      row[j] = std::exp(row[j] - m_new);
      sum += row[j];
    }
    l[i] = l[i] * alpha[i] + sum;
    m[i] = m_new;
  }
}

void pv_generic(float* o, int64_t dv, const float* p, int64_t ld_p, int rows, const float* v,
                int keys, const float* alpha) {
  for (int i = 0; i < rows; ++i) {
    float* oi = o + i * dv;
    const float a = alpha[i];
    for (int64_t c = 0; c < dv; ++c) oi[c] *= a;
    for (int j = 0; j < keys; ++j) {
      const float pij = p[i * ld_p + j];
      const float* vj = v + j * dv;
      for (int64_t c = 0; c < dv; ++c) oi[c] += pij * vj[c];
    }
  }
}

detail::attention_kernels select_kernels() {
  if (active_simd() == simd_level::avx2_fma) {
    const detail::attention_kernels k = detail::attention_kernels_avx2();
    if (k.scores != nullptr) return k;
  }
  return {&scores_generic, &softmax_generic, &pv_generic};
}

// One (batch, head, query block) task.
void attend_block(float* o, const float* q, const float* k, const float* v, int rows,
                  int64_t q0, const attention_f32_shape& s, const detail::attention_kernels& kern) {
  alignas(64) float tile[k_bq * k_bk];
  float m[k_bq], l[k_bq], alpha[k_bq];
  std::fill(m, m + rows, k_neg_inf);
  std::fill(l, l + rows, 0.0f);
  std::fill(o, o + rows * s.dim_v, 0.0f);

  // Keys [0, key_end) are visible to at least one row of the block.
  int64_t key_end = s.seq_k;
  if (s.causal) key_end = std::clamp<int64_t>(s.kv_offset + q0 + rows, 0, s.seq_k);

  const int bk = key_block(s.dim, s.dim_v);
  for (int64_t k0 = 0; k0 < key_end; k0 += bk) {
    const int keys = static_cast<int>(std::min<int64_t>(bk, key_end - k0));
    kern.scores(tile, k_bk, q, rows, k + k0 * s.dim, keys, s.dim, s.scale);
    if (s.causal && k0 + keys - 1 > s.kv_offset + q0) {
      for (int i = 0; i < rows; ++i) {
        // first hidden key of row i, relative to k0
        const int64_t first = std::max<int64_t>(0, s.kv_offset + q0 + i + 1 - k0);
        for (int64_t j = first; j < keys; ++j) tile[i * k_bk + j] = k_neg_inf;
      }
    }
    kern.softmax(tile, k_bk, rows, keys, m, l, alpha);
    kern.pv(o, s.dim_v, tile, k_bk, rows, v + k0 * s.dim_v, keys, alpha);
  }

  for (int i = 0; i < rows; ++i) {
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    float* oi = o + i * s.dim_v;
    for (int64_t c = 0; c < s.dim_v; ++c) oi[c] *= inv;
  }
}

}  // namespace

void attention_f32(float* out, const float* q, const float* k, const float* v,
                   const attention_f32_shape& s) {
  static const detail::attention_kernels kern = select_kernels();
  const int64_t group = s.heads_q / s.heads_kv;
  const int64_t n_qb = (s.seq_q + k_bq - 1) / k_bq;
  const int64_t n_bh = s.batch * s.heads_q;

  auto task = [&](int64_t t) {
    const int64_t qb = n_qb - 1 - t / n_bh;  // last (heaviest when causal) first
    const int64_t bh = t % n_bh;
    const int64_t b = bh / s.heads_q;
    const int64_t h = bh % s.heads_q;
    const int64_t hkv = b * s.heads_kv + h / group;
    const int64_t q0 = qb * k_bq;
    const int rows = static_cast<int>(std::min<int64_t>(k_bq, s.seq_q - q0));
    attend_block(out + (bh * s.seq_q + q0) * s.dim_v, q + (bh * s.seq_q + q0) * s.dim,
                 k + hkv * s.seq_k * s.dim, v + hkv * s.seq_k * s.dim_v, rows, q0, s, kern);
  };

  const double flops = 2.0 * static_cast<double>(n_bh) * s.seq_q * s.seq_k * (s.dim + s.dim_v);
  if (num_threads() > 1 && flops >= (1 << 20)) {
    parallel_for(n_qb * n_bh, task);
  } else {
    for (int64_t t = 0; t < n_qb * n_bh; ++t) task(t);
  }
}

}  // namespace tessera
