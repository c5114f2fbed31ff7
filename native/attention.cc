// attention: out = softmax(scale * q k^T + mask) v, f32, flash-attention style.
//
// Algorithm: one task per (batch, query head, block of BQ=96 query rows). A task
// walks the key/value rows of its kv head in key blocks, keeping for each query row a
// running max m, sum l and output accumulator O (online softmax):
//   S = scale * Q_blk K_blk^T;  causal: key j hidden from query i when j > kv_offset + i
//   m_new = max(m, rowmax S); P = exp(S - m_new); alpha = exp(m - m_new)
//   l = alpha * l + rowsum P;  O = alpha * O + P V_blk
// then O /= l. The Sq x Sk score matrix is never materialised; scratch is O(BQ x
// (D + Dv + BK)) per thread (~110 KB at D = 128), whatever Sk. Keys past the causal
// frontier are never visited. A query row with no visible key outputs zeros; a NaN
// score makes its row NaN (as PyTorch).
// Two kernel families:
//   prefill (AVX2, >= 16 rows per task; attention_avx2.cc): the block is processed
//     transposed, 24 queries per ymm triple, so the softmax runs down columns with no
//     horizontal reductions and K, V are read in place (no packing); causal work is
//     skipped per 24-query sliver and 4-key tile.
//   row kernels (decode, small groups, and the portable path): S by dot products
//     along D, a row softmax, O by 6x16 P.V tiles; the next K/V block is prefetched
//     (decode is memory bound).
// GQA/MQA: query head h reads kv head h / (Hq / Hkv) in place; at decode (Sq = 1) the
// Hq/Hkv heads of a group form one block, so K/V are read once per group.
// Decode (few query rows, long KV cache, few tasks): the KV range is also cut into chunks
// that run as tasks (flash-decoding), merged per row by their (m, l) afterwards; see
// attend_split. The chunking depends on the shape only.
//
// Layouts (PyTorch SDPA): q [B][Hq][Sq][D], k [B][Hkv][Sk][D], v [B][Hkv][Sk][Dv],
// out [B][Hq][Sq][Dv], contiguous; out is overwritten and never read first.
// Parallelism: tasks are independent and each output row belongs to one task, with a
// fixed split (never depending on the thread count), so results are bit-identical for
// any thread count. Tasks go head-major (both threads share one head's K/V in L3),
// within a head the last, heaviest-when-causal, query block first.
// Tolerance vs float64: ~1e-6 relative (max abs error ~1e-7 on unit-scale data).
// Measured on the 2-core Zen3 VM (shared, noisy; AVX2 FMA peak measured 100 GFLOP/s
// per core at ~3.1 GHz, nominal 157 for 2 cores at 2.445 GHz), B1 H16 D128, FLOPs =
// 4 B H Sq Sk D (causal: half). Best-of runs: S2048 ~81 GFLOP/s on 1 thread (~82% of
// the core's peak), 160-169 on 2 threads; S8192 (2 heads) the same. Benchmark harness,
// 2 threads, quiet rounds, vs ORT MultiHeadAttention in the same run: S2048 132-153
// (ORT 98-129, 1.17-1.34x; the row-kernel version before was 0.90-0.95x), S512 86-118
// (1.06-1.21x), causal S2048 124-136 (ORT 39-57: it does not skip masked blocks).
// Decode (Sq 1, Sk 4096, row kernels, memory bound): ~3.3 ms, ~19 GB/s of K+V.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "cpu_features.h"
#include "thread_pool.h"

namespace tessera {

namespace {

constexpr int k_bq = detail::k_bq_max;
constexpr int k_bk = 64;  // largest key block; also the score tile row stride (multiple of 8)
// Fewer rows per task (decode, small GQA groups) take the row kernels: the prefill
// kernel's 24-query slivers would run mostly empty.
constexpr int k_prefill_rows = 16;

// Key block of the row kernels: as many keys as keep one K block and one V block
// within ~32 KB each (~16 KB for blocks of < 12 rows, i.e. decode), 8..64, multiple
// of 8. With many rows (portable path) 64 keys rather than 32 halve the per-block O
// rescale/load/store and softmax bookkeeping (~5% at D = 128).
int key_block(int64_t d, int64_t dv, int rows) {
  const int64_t widest = std::max(d, dv);
  const int64_t fit = ((rows >= 12 ? 32768 : 16384) / 4 / widest) & ~int64_t{7};
  return static_cast<int>(std::clamp<int64_t>(fit, 8, k_bk));
}
constexpr float k_neg_inf = -std::numeric_limits<float>::infinity();

// Eight partial sums per dot product so GCC vectorises the D loop with baseline SSE2
// (a single running sum is a loop-carried dependency it may not reorder).
void scores_generic(float* s, int64_t ld_s, const float* q, int rows, const float* k, int keys,
                    int64_t d, float scale) {
  const int64_t d8 = d & ~int64_t{7};
  for (int i = 0; i < rows; ++i) {
    const float* qi = q + i * d;
    for (int j = 0; j < keys; ++j) {
      const float* kj = k + j * d;
      float part[8] = {};
      for (int64_t x = 0; x < d8; x += 8)
        for (int u = 0; u < 8; ++u) part[u] += qi[x + u] * kj[x + u];
      float acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (int64_t x = d8; x < d; ++x) acc += qi[x] * kj[x];
      s[i * ld_s + j] = scale * acc;
    }
  }
}

void softmax_generic(float* s, int64_t ld_s, int rows, int keys, float* m, float* l,
                     float* alpha) {
  for (int i = 0; i < rows; ++i) {
    float* row = s + i * ld_s;
    float m_new = m[i];
    bool nan = std::isnan(m[i]);
    for (int j = 0; j < keys; ++j) {
      m_new = std::max(m_new, row[j]);
      nan |= std::isnan(row[j]);
    }
    if (nan) {  // a NaN score poisons the row (as in PyTorch): P, l and the rescale all NaN
      detail::mark_row_nan(row, keys, m[i], l[i], alpha[i]);
      continue;
    }
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
  return {&scores_generic, &softmax_generic, &pv_generic, nullptr};
}

void prefetch_span(const float* p, int64_t n) {
#if defined(__GNUC__)
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 3);  // one per 64-byte line
#else
  (void)p;
  (void)n;
#endif
}

// One task: `rows` query rows (row stride D in q, Dv in o) against one kv head.
// Row i sits at absolute position kv_offset + q0 + i * pos_step: pos_step is 1
// for consecutive positions of one head, 0 for the stacked heads of a GQA group
// at decode (Sq = 1), which share every K/V load.
// With m_out (split-KV decode): only keys [key_begin, key_stop), and the block's state is
// returned unnormalised (O, running max m, running sum l per row) for the merge.
void attend_block(float* o, const float* q, const float* k, const float* v, int rows,
                  int64_t q0, int64_t pos_step, const attention_f32_shape& s,
                  const detail::attention_kernels& kern, int64_t key_begin = 0,
                  int64_t key_stop = std::numeric_limits<int64_t>::max(), float* m_out = nullptr,
                  float* l_out = nullptr) {
  if (kern.prefill != nullptr && rows >= k_prefill_rows && m_out == nullptr) {
    kern.prefill(o, q, k, v, rows, s.kv_offset + q0, pos_step, s);
    return;
  }
  alignas(64) float tile[k_bq * k_bk];
  const int bk = key_block(s.dim, s.dim_v, rows);
  float m[k_bq], l[k_bq], alpha[k_bq];
  std::fill(m, m + rows, k_neg_inf);
  std::fill(l, l + rows, 0.0f);
  std::fill(o, o + rows * s.dim_v, 0.0f);

  // Keys [0, key_end) are visible to at least one row of the block.
  int64_t key_end = s.seq_k;
  const int64_t pos0 = s.kv_offset + q0;  // position of row 0, the most restricted row
  if (s.causal) key_end = std::clamp<int64_t>(pos0 + (rows - 1) * pos_step + 1, 0, s.seq_k);
  key_end = std::min(key_end, key_stop);

  for (int64_t k0 = key_begin; k0 < key_end; k0 += bk) {
    const int keys = static_cast<int>(std::min<int64_t>(bk, key_end - k0));
    if (k0 + keys < key_end) {
      // Next K/V blocks are contiguous: ask for them now so the loads overlap this
      // block's math (matters at decode, where a block is little math per byte;
      // also measured ~10% faster at 2 threads for prefill on this VM).
      const int64_t next = std::min<int64_t>(bk, key_end - k0 - keys);
      prefetch_span(k + (k0 + keys) * s.dim, next * s.dim);
      prefetch_span(v + (k0 + keys) * s.dim_v, next * s.dim_v);
    }
    // Causal: rows [0, i0) see no key of this block (position < k0) and are skipped;
    // for them the step would be O * 1 + 0, so skipping changes no value.
    int i0 = 0;
    if (s.causal && pos_step == 1 && k0 > pos0)
      i0 = static_cast<int>(std::min<int64_t>(rows - 1, k0 - pos0));
    const int n_rows = rows - i0;
    float* t0 = tile + i0 * k_bk;
    kern.scores(t0, k_bk, q + i0 * s.dim, n_rows, k + k0 * s.dim, keys, s.dim, s.scale);
    if (s.causal && k0 + keys - 1 > pos0) {
      for (int i = i0; i < rows; ++i) {
        // first hidden key of row i, relative to k0
        const int64_t first = std::max<int64_t>(0, pos0 + i * pos_step + 1 - k0);
        for (int64_t j = first; j < keys; ++j) tile[i * k_bk + j] = k_neg_inf;
      }
    }
    kern.softmax(t0, k_bk, n_rows, keys, m + i0, l + i0, alpha + i0);
    kern.pv(o + i0 * s.dim_v, s.dim_v, t0, k_bk, n_rows, v + k0 * s.dim_v, keys, alpha + i0);
  }

  if (m_out != nullptr) {
    std::copy(m, m + rows, m_out);
    std::copy(l, l + rows, l_out);
    return;
  }
  for (int i = 0; i < rows; ++i) {
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    float* oi = o + i * s.dim_v;
    for (int64_t c = 0; c < s.dim_v; ++c) oi[c] *= inv;
  }
}

// Split-KV decode (flash-decoding): a few query rows against a long KV cache give few
// tasks (B1 MQA: one), so the KV range of every task is also cut into chunks that run as
// tasks of their own; each returns its unnormalised (O, m, l) and a second pass merges
// the chunks of a row in chunk order: M = max m_c, out = sum e^(m_c - M) O_c / sum
// e^(m_c - M) l_c. Chunk count and bounds depend on the shape only, never on the thread
// count, so results stay bit-identical for any thread count. Applies to row-kernel tasks
// (< k_prefill_rows rows) against >= k_split_min_keys keys, when there are fewer than
// k_split_target tasks.
constexpr int64_t k_split_min_keys = 1024;
constexpr int64_t k_split_chunk_min = 512;  // keys per chunk, at least
constexpr int64_t k_split_target = 64;      // aim for about this many (task, chunk) pairs

struct block_task {
  float* o;
  const float* q;
  const float* k;
  const float* v;
  int rows;
  int64_t q0, pos_step;
};

void attend_split(const std::function<block_task(int64_t)>& describe, int64_t n_tasks,
                  int64_t n_chunks, int64_t chunk_keys, int max_rows, bool pool,
                  const attention_f32_shape& s, const detail::attention_kernels& kern) {
  const int64_t dv = s.dim_v;
  const size_t slots = static_cast<size_t>(n_tasks * n_chunks * max_rows);
  std::vector<float> part_o(slots * dv), part_m(slots), part_l(slots);
  run_tasks(pool, n_tasks * n_chunks, [&](int64_t t) {
    const block_task bt = describe(t / n_chunks);
    const int64_t c = t % n_chunks;
    const size_t slot = static_cast<size_t>(t) * max_rows;
    attend_block(part_o.data() + slot * dv, bt.q, bt.k, bt.v, bt.rows, bt.q0, bt.pos_step, s, kern,
                 c * chunk_keys, (c + 1) * chunk_keys, part_m.data() + slot, part_l.data() + slot);
  });
  run_tasks(pool, n_tasks, [&](int64_t t) {
    const block_task bt = describe(t);
    for (int i = 0; i < bt.rows; ++i) {
      float* oi = bt.o + i * dv;
      float mx = k_neg_inf;
      bool nan = false;
      int64_t visited = 0;  // chunks the row's keys reached (a causal row may stop early)
      for (int64_t c = 0; c < n_chunks; ++c) {
        const size_t r = static_cast<size_t>(t * n_chunks + c) * max_rows + i;
        if (c * chunk_keys >= s.seq_k) break;
        ++visited;
        nan |= std::isnan(part_m[r]);
        mx = std::max(mx, part_m[r]);
      }
      if (nan || mx == k_neg_inf) {  // a NaN score: NaN row (as PyTorch); nothing visible: zeros
        std::fill(oi, oi + dv, nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
        continue;
      }
      std::fill(oi, oi + dv, 0.0f);
      float sum = 0.0f;
      for (int64_t c = 0; c < visited; ++c) {
        const size_t r = static_cast<size_t>(t * n_chunks + c) * max_rows + i;
        if (part_m[r] == k_neg_inf) continue;  // no visible key in this chunk
        const float w = std::exp(part_m[r] - mx);
        sum += w * part_l[r];
        const float* po = part_o.data() + r * dv;
        for (int64_t x = 0; x < dv; ++x) oi[x] += w * po[x];
      }
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      for (int64_t x = 0; x < dv; ++x) oi[x] *= inv;
    }
  });
}

}  // namespace

void attention_f32(float* out, const float* q, const float* k, const float* v,
                   const attention_f32_shape& s) {
  static const detail::attention_kernels kern = select_kernels();
  const int64_t group = s.heads_q / s.heads_kv;
  const double flops =
      2.0 * static_cast<double>(s.batch * s.heads_q) * s.seq_q * s.seq_k * (s.dim + s.dim_v);
  const bool pool = num_threads() > 1 && flops >= (1 << 20);

  int64_t n_tasks = 0;
  int max_rows = 0;
  std::function<block_task(int64_t)> describe;
  if (s.seq_q == 1 && group > 1) {
    // Decode with GQA/MQA: the group's query heads are consecutive rows of q/out
    // (Sq = 1) at one position; stacking them reads each K/V row once per group.
    const int64_t n_gb = (group + k_bq - 1) / k_bq;
    n_tasks = s.batch * s.heads_kv * n_gb;
    max_rows = static_cast<int>(std::min<int64_t>(k_bq, group));
    describe = [&, n_gb](int64_t t) {
      const int64_t hkv = t / n_gb;  // b * Hkv + kv head
      const int64_t h0 = hkv * group + (t % n_gb) * k_bq;  // b * Hq + first query head
      const int rows = static_cast<int>(std::min<int64_t>(k_bq, (hkv + 1) * group - h0));
      return block_task{out + h0 * s.dim_v, q + h0 * s.dim, k + hkv * s.seq_k * s.dim,
                        v + hkv * s.seq_k * s.dim_v, rows, 0, 0};
    };
  } else {
    const int64_t n_qb = (s.seq_q + k_bq - 1) / k_bq;
    const int64_t n_bh = s.batch * s.heads_q;
    n_tasks = n_qb * n_bh;
    max_rows = static_cast<int>(std::min<int64_t>(k_bq, s.seq_q));
    describe = [&, n_qb](int64_t t) {
      // Head-major: the query blocks of one head run back to back (both threads on one
      // head at a time), so its K/V stay in L3 between tasks; within a head the last
      // (heaviest when causal) block first, so the run ends on light tasks.
      const int64_t bh = t / n_qb;
      const int64_t qb = n_qb - 1 - t % n_qb;
      const int64_t b = bh / s.heads_q;
      const int64_t h = bh % s.heads_q;
      const int64_t hkv = b * s.heads_kv + h / group;
      const int64_t q0 = qb * k_bq;
      const int rows = static_cast<int>(std::min<int64_t>(k_bq, s.seq_q - q0));
      return block_task{out + (bh * s.seq_q + q0) * s.dim_v, q + (bh * s.seq_q + q0) * s.dim,
                        k + hkv * s.seq_k * s.dim, v + hkv * s.seq_k * s.dim_v, rows, q0, 1};
    };
  }

  if (max_rows < k_prefill_rows && s.seq_k >= k_split_min_keys && n_tasks < k_split_target) {
    const int64_t want = (k_split_target + n_tasks - 1) / n_tasks;
    const int64_t most = s.seq_k / k_split_chunk_min;
    const int64_t chunks = std::max<int64_t>(1, std::min(want, most));
    const int64_t chunk_keys = ((s.seq_k + chunks - 1) / chunks + k_bk - 1) / k_bk * k_bk;
    const int64_t n_chunks = (s.seq_k + chunk_keys - 1) / chunk_keys;
    if (n_chunks > 1) {
      attend_split(describe, n_tasks, n_chunks, chunk_keys, max_rows, pool, s, kern);
      return;
    }
  }
  run_tasks(pool, n_tasks, [&](int64_t t) {
    const block_task bt = describe(t);
    attend_block(bt.o, bt.q, bt.k, bt.v, bt.rows, bt.q0, bt.pos_step, s, kern);
  });
}

}  // namespace tessera
