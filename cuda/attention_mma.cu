// attention_mma.cu: the portable mma.sync (FA2-style) attention kernel, its split-KV
// decode form, and the split combine (building blocks in attention_mma.cuh, dispatch in attention.cu; the
// Hopper kernel is in attention_sm90.cu).
//
// mma kernel (sm_80+, also the correct-first version the sm90 kernel is checked against): one CTA of 4
// warps per (tile of packed query rows, b, kv head[, KV split]). GQA rows are packed: the group*Sq rows
// of all query heads sharing a kv head form one row space (row r = head-in-group r / Sq, query r % Sq),
// so K/V are read once per group. K/V tiles of kKT keys stream through a ring of 2 stages (decode form: 3):
// 16-byte cp.async into rows padded by 16 bytes, or for decode on H100/H200 (kTma) TMA box loads on one
// mbarrier per stage into 128-byte-swizzled rows (both conflict-free for ldmatrix); S and PV run on
// mma.sync m16n8k16 with ldmatrix(.trans) fragments; online softmax with exp2 (any sign of scale).
//   prefill form: 64 rows per CTA, each warp owns 16 rows and all keys of a tile.
//   decode form (kWarpSplit): 16 rows per CTA, each warp takes a quarter of every tile's keys; the 4
//     partial (m, l, O) are merged through shared memory; KV is also cut among CTAs (splits: as many as
//     fill ONE wave of resident CTAs) whose normalized partials + log-sum-exp go to a float32 workspace
//     (kept across calls); the last CTA of each column to finish merges them (atomic arrival counter,
//     combine_if_last). With >= 8 tiles per CTA the tiles are not cut into equal ranges but handed out by
//     a per-column counter (dynamic schedule): the CTAs of one wave stream at rates up to ~40% apart
//     (H100 timeline, cuda/dev/NOTES.md v6), so equal shares left the fastest idle for the slowest. More
//     packed rows (GQA group x Sq > 16): 64-row CTAs, still split-KV, merged by the separate
//     attn_combine_kernel (one CTA merging 64 rows measured slower), launched as a programmatic dependent.
// H100 decode (cuda/dev/NOTES.md v7): TMA loads, a one-round-trip merge and the dependent combine launch
// took B1 Hq32 Hkv8 Sk32768 from 2208 to 2482 GB/s (82% of the 3.01 TB/s device copy) and B8 Sk8192 from
// 2575 to 2737 (91%).
// Decode is bandwidth bound: B*Hkv*Sk*(D+Dv)*2 bytes; at the measured 3.0 TB/s (H100) a B8 Hkv8 Sk8192
// D128 cache (268 MB with V) takes ~90 us. Tolerance as for the sm90 kernel (bf16 P, fp32 accumulation).
#include "attention.cuh"
#include "attention_mma.cuh"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

namespace tessera_cuda {

namespace {

using namespace mma_detail;

// Arrival counters of the fused split combine, one per (row tile, b, kv head) CTA column of a decode
// launch; the last CTA to arrive resets its counter to 0, so they stay zero between launches (all launches
// are ordered on the one backend stream). Launches with more CTA columns use the separate combine kernel.
constexpr int kMaxSplitTiles = 4096;
__device__ unsigned int g_split_counter[kMaxSplitTiles];
// Tile counters of the dynamic split-KV schedule, one per CTA column; reset by the column's last CTA.
__device__ unsigned int g_tile_counter[kMaxSplitTiles];
// Dynamic schedule: CTA z of a column starts with tiles z, z + splits, ... (kDynStatic of them, no atomics
// while the pipeline fills), then takes one tile at a time from the column's counter, kDynAhead steps before
// its loads are issued (hides the atomic's latency). Measured on H100 against alternatives: a contiguous
// static run of 50-90% of a fair share first, then counter chunks, was 3-5% slower (cuda/dev/NOTES.md, v6).
constexpr int kDynAhead = 1, kDynRing = 8, kDynStatic = 4;

// Fused combine ("last block done"): every split CTA wrote its normalized partial O and log2-sum-exp of its
// rows to the workspace and counts itself in; the CTA that arrives last merges all splits' partials of its
// rows into the output (merge_splits, kU splits per round trip: 32 for the 16-row D128 form, whose two
// CTAs per SM are set by shared memory, not registers; 16 at D64 and 8 for 64-row CTAs, which keep their
// third). The chain after the last CTA's loop is what a decode launch cannot hide (H100: ~8 us of a 61 us
// B1 Sk32768 launch before this form), so it is kept to: partial stores, one acq_rel atomic, one round
// trip per 32 splits, output stores.
template <typename T, int kD, int kU>
__device__ __forceinline__ void combine_if_last(const MmaParams& p, int b, int hkv, int row0, int row_end,
                                                bool do_combine) {
  __shared__ int s_last;
  // The CTA's partial stores must be visible device-wide before it counts in: the barrier orders them before
  // thread 0's acq_rel atomic (release is cumulative over what the barrier made visible to it), one L2 round
  // trip instead of a fence per thread and then the atomic (-0.5 us per launch on H100).
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned int* ctr = g_split_counter + blockIdx.y * gridDim.x + blockIdx.x;
    unsigned int prev;
    asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;" : "=r"(prev) : "l"(ctr) : "memory");
    const int last = prev == unsigned(p.splits - 1);
    if (last) {  // every split arrived (and took its last tile): ready for the next launch
      atomicExch(ctr, 0u);
      if (p.dynamic) atomicExch(g_tile_counter + blockIdx.y * gridDim.x + blockIdx.x, 0u);
    }
    s_last = last;
  }
  __syncthreads();
  if (!s_last || !do_combine) return;
  // (the partials are visible here: thread 0's acquire, then the barrier above)
  const int64_t rows_total = int64_t(gridDim.y / p.Hkv) * p.Hq * p.Sq;
  constexpr int kC = kD / 4;  // float4 columns per row
  for (int i = threadIdx.x; i < (row_end - row0) * kC; i += 128) {
    const int64_t orow = out_row(p, b, hkv, row0 + i / kC);
    const int d = (i % kC) * 4;
    store4(static_cast<T*>(p.o) + orow * kD + d, merge_splits<kU>(p.o_part, p.lse_part, rows_total, kD, orow, d, p.splits));
  }
}

template <typename T, int kD, bool kWarpSplit, bool kTma>
__global__ void __launch_bounds__(128) attn_mma_kernel(const MmaParams p, const __grid_constant__ CUtensorMap tm_k,
                                                       const __grid_constant__ CUtensorMap tm_v) {
  using C = MmaCfg<kD, kWarpSplit, kTma>;
  constexpr int kKT = C::kKT, kKW = C::kKW, kStride = C::kStride, kStages = C::kStages;
  extern __shared__ __align__(16) uint8_t smem[];
  const uint32_t sQ = smem_u32(smem);
  const uint32_t sK = kTma ? (sQ + C::kRows * kStride + 1023) & ~1023u : sQ + C::kRows * kStride;  // [kStages][kTile]
  const uint32_t sV = sK + kStages * C::kTile;
  uint8_t* kv_smem = smem + (sK - sQ);  // generic pointer to the stages (reused by the warp merge)
  __shared__ __align__(8) uint64_t full[kTma ? kStages : 1];  // TMA: stage landed
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
#if __CUDA_ARCH__ >= 900
  // a separate split combine launched after this grid (programmatic dependent launch) may be scheduled as
  // soon as every CTA of this grid has started; it waits for this grid's completion before reading
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
  const int b = blockIdx.y / p.Hkv, hkv = blockIdx.y % p.Hkv;
  const int row0 = blockIdx.x * C::kRows;
  const int row_end = min(row0 + C::kRows, p.rows);

  int kv_begin = p.dynamic ? 0 : blockIdx.z * p.split_keys;
  int kv_end = p.dynamic ? p.Sk : min(p.Sk, kv_begin + p.split_keys);
  int i_min = 0;  // smallest query index among the CTA's rows (for the causal mask check)
  if (p.causal) {
    const int i0 = row0 % p.Sq, il = (row_end - 1) % p.Sq;
    const bool wraps = row_end - row0 >= p.Sq || il < i0;
    i_min = wraps ? 0 : i0;
    kv_end = min(kv_end, p.kv_offset + (wraps ? p.Sq - 1 : il) + 1);
  }
  const int n_tiles = kv_end > kv_begin ? (kv_end - kv_begin + kKT - 1) / kKT : 0;
  // Which KV tile is this CTA's t-th: static splits take tiles kv_begin / kKT + t. The dynamic schedule
  // (p.dynamic; the column's n_tiles tiles shared by its p.splits CTAs) keeps tile numbers in a ring:
  // CTAs that stream faster take more tiles, so a column's CTAs finish within a tile or two of each other
  // (with static splits, one wave of CTAs streaming equal shares finished up to ~40% apart).
  __shared__ int s_tile[kDynRing];
  unsigned int* tile_ctr = g_tile_counter + blockIdx.y * gridDim.x + blockIdx.x;
  // thread 0 only: the tile of this CTA's step e (>= n_tiles: none left)
  auto tile_of_step = [&](int e) {
    return e < kDynStatic ? e * p.splits + int(blockIdx.z) : kDynStatic * p.splits + int(atomicAdd(tile_ctr, 1u));
  };
  if (p.dynamic) {
    if (tid == 0)
      for (int e = 0; e < kStages - 1 + kDynAhead; ++e) s_tile[e] = tile_of_step(e);
    __syncthreads();
  }
  auto tile_key0 = [&](int t) { return p.dynamic ? s_tile[t % kDynRing] * kKT : kv_begin + t * kKT; };
  auto tile_valid = [&](int t) { return p.dynamic ? s_tile[t % kDynRing] < n_tiles : t < n_tiles; };

  const T* q = static_cast<const T*>(p.q);
  const T* kg = static_cast<const T*>(p.k) + int64_t(blockIdx.y) * p.Sk * kD;
  const T* vg = static_cast<const T*>(p.v) + int64_t(blockIdx.y) * p.Sk * kD;
  constexpr int kCpr = kD / 8;  // 16-byte chunks per row
  for (int c = tid; c < C::kRows * kCpr; c += 128) {
    const int r = c / kCpr, r_abs = row0 + r;
    const bool ok = r_abs < p.rows;
    const T* src = ok ? q + out_row(p, b, hkv, r_abs) * kD + (c % kCpr) * 8 : q;
    cp_async16(sQ + r * kStride + (c % kCpr) * 16, src, ok);
  }
  if (kTma && tid == 0) {
    for (int st = 0; st < kStages; ++st) tma::mbar_init(smem_u32(&full[st]), 1);
    tma::fence_mbar_init();
  }
  if (kTma) __syncthreads();
  auto load_kv = [&](int t, int st) {
    const int key0 = tile_key0(t);
    if (kTma) {  // one thread; keys past Sk are zero-filled, keys past kv_end masked below
      if (tid == 0)
        tma_kv<kD, kKT>(sK + st * C::kTile, sV + st * C::kTile, &tm_k, &tm_v, key0, int(blockIdx.y), smem_u32(&full[st]));
    } else {
      for (int c = tid; c < kKT * kCpr; c += 128) {
        const int r = c / kCpr, key = key0 + r;
        const bool ok = key < kv_end;
        const int64_t off = ok ? int64_t(key) * kD + (c % kCpr) * 8 : 0;
        const uint32_t dst = st * C::kTile + r * kStride + (c % kCpr) * 16;
        cp_async16_pf(sK + dst, kg + off, ok, p.l2_prefetch);
        cp_async16_pf(sV + dst, vg + off, ok, p.l2_prefetch);
      }
    }
  };
  // prologue: tiles 0 .. kStages-2, one commit group each (Q rides in the first); groups stay counted
  // even when empty, so "tile t landed" is always cp.async.wait_group(kStages - 1) in iteration t.
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (tile_valid(t)) load_kv(t, t);
    cp_commit();
  }

  const int qr = kWarpSplit ? 0 : warp * 16;  // this warp's first row in the CTA tile
  const int kc0 = kWarpSplit ? warp * kKW : 0;  // this warp's first key in a tile
  const int g = lane / 4, t4 = lane % 4;
  const int ra = row0 + qr + g, rb = ra + 8;  // packed rows of this thread
  const int ia = ra % p.Sq, ib = rb % p.Sq;
  float o[kD / 8][4];
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m_a = kNegInf, m_b = kNegInf, l_a = 0.f, l_b = 0.f;

  static_assert(kStages - 1 + kDynAhead <= kDynStatic && kDynStatic < kDynRing, "dynamic tile ring");
  for (int t = 0; tile_valid(t); ++t) {
    if (tile_valid(t + kStages - 1)) load_kv(t + kStages - 1, (t + kStages - 1) % kStages);
    cp_commit();
    // the tile number for step e = t + kStages - 1 + kDynAhead: first read kDynAhead steps from now (after
    // this step's closing __syncthreads); its ring slot last held step e - kDynRing, computed steps ago
    if (p.dynamic && tid == 0) {
      const int e = t + kStages - 1 + kDynAhead;
      s_tile[e % kDynRing] = tile_of_step(e);
    }
    if (kTma) {
      if (t == 0) {  // Q (cp.async) landed and is visible to all warps
        cp_wait<0>();
        __syncthreads();
      }
      tma::mbar_wait(smem_u32(&full[t % kStages]), (t / kStages) & 1);
    } else {
      cp_wait<kStages - 1>();
      __syncthreads();
    }
    const uint32_t kst = sK + (t % kStages) * C::kTile, vst = sV + (t % kStages) * C::kTile;
    float s[kKW / 8][4];
#pragma unroll
    for (int j = 0; j < kKW / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      uint32_t a[4];
      ldsm_x4(a, sQ + (qr + lane % 16) * kStride + (ks * 16 + (lane / 16) * 8) * 2);
#pragma unroll
      for (int j2 = 0; j2 < kKW / 16; ++j2) {
        uint32_t bb[4];
        ldsm_x4(bb, kv_addr<kD, kKT, kTma>(kst, kc0 + j2 * 16 + (lane / 16) * 8 + lane % 8, ks * 16 + ((lane / 8) % 2) * 8));
        Mma<T>::run(s[2 * j2], a, bb[0], bb[1]);
        Mma<T>::run(s[2 * j2 + 1], a, bb[2], bb[3]);
      }
    }
    // scale, mask, online softmax (rows a and b; each row spread over the 4 threads of a quad)
    const int tk0 = tile_key0(t), key0 = tk0 + kc0;
    const bool masked = tk0 + kKT > kv_end || (p.causal && tk0 + kKT - 1 > p.kv_offset + i_min);
    float mx_a = kNegInf, mx_b = kNegInf;
#pragma unroll
    for (int j = 0; j < kKW / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[j][e] * p.scale_log2;
        if (masked) {
          const int key = key0 + 8 * j + 2 * t4 + (e & 1);
          const int i = e < 2 ? ia : ib;
          if (key >= kv_end || (p.causal && key > p.kv_offset + i)) x = kNegInf;
        }
        s[j][e] = x;
      }
      mx_a = fmaxf(mx_a, fmaxf(s[j][0], s[j][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[j][2], s[j][3]));
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffff, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffff, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffff, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffff, mx_b, 2));
    const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
    const float use_a = new_a == kNegInf ? 0.f : new_a, use_b = new_b == kNegInf ? 0.f : new_b;
    const float corr_a = ex2(m_a - use_a), corr_b = ex2(m_b - use_b);
    m_a = new_a;
    m_b = new_b;
    float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
    for (int j = 0; j < kKW / 8; ++j) {
      s[j][0] = ex2(s[j][0] - use_a);
      s[j][1] = ex2(s[j][1] - use_a);
      s[j][2] = ex2(s[j][2] - use_b);
      s[j][3] = ex2(s[j][3] - use_b);
      sum_a += s[j][0] + s[j][1];
      sum_b += s[j][2] + s[j][3];
    }
    l_a = l_a * corr_a + sum_a;
    l_b = l_b * corr_b + sum_b;
#pragma unroll
    for (int j = 0; j < kD / 8; ++j) {
      o[j][0] *= corr_a;
      o[j][1] *= corr_a;
      o[j][2] *= corr_b;
      o[j][3] *= corr_b;
    }
#pragma unroll
    for (int kk = 0; kk < kKW / 16; ++kk) {
      const uint32_t a[4] = {Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]), Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]),
                             Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int d2 = 0; d2 < kD / 16; ++d2) {
        uint32_t bb[4];
        ldsm_x4_t(bb, kv_addr<kD, kKT, kTma>(vst, kc0 + kk * 16 + lane % 8 + ((lane / 8) % 2) * 8, d2 * 16 + (lane / 16) * 8));
        Mma<T>::run(o[2 * d2], a, bb[0], bb[1]);
        Mma<T>::run(o[2 * d2 + 1], a, bb[2], bb[3]);
      }
    }
    __syncthreads();  // the stage is overwritten by the next iteration's load
  }
  cp_wait<0>();

  l_a += __shfl_xor_sync(0xffffffff, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffff, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffff, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffff, l_b, 2);

  if (!kWarpSplit) {
    const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
    const float lse_a = l_a > 0.f ? m_a + log2f(l_a) : kNegInf, lse_b = l_b > 0.f ? m_b + log2f(l_b) : kNegInf;
#pragma unroll
    for (int j = 0; j < kD / 8; ++j) {
      if (ra < p.rows) write_row<T, kD>(p, out_row(p, b, hkv, ra), 8 * j + 2 * t4, o[j][0] * inv_a, o[j][1] * inv_a, lse_a, j == 0 && t4 == 0);
      if (rb < p.rows) write_row<T, kD>(p, out_row(p, b, hkv, rb), 8 * j + 2 * t4, o[j][2] * inv_b, o[j][3] * inv_b, lse_b, j == 0 && t4 == 0);
    }
    if (p.fused || p.dynamic) combine_if_last<T, kD, kWarpSplit ? (kD == 128 ? 32 : 16) : 8>(p, b, hkv, row0, row_end, p.fused);
    return;
  }
  // decode form: merge the 4 warps' partial (m, l, O) for the CTA's 16 rows through shared memory
  // (the K/V stages are free: every warp passed the loop's last __syncthreads).
  float* red_o = reinterpret_cast<float*>(kv_smem);  // [4][16][kD]
  float* red_m = red_o + 4 * 16 * kD;                                   // [4][16]
  float* red_l = red_m + 4 * 16;
  // (only rows that exist: a GQA group of 4 at Sq 1 fills 4 of the 16)
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) {
    float* wa = red_o + (warp * 16 + g) * kD + 8 * j + 2 * t4;
    if (ra < p.rows) *reinterpret_cast<float2*>(wa) = make_float2(o[j][0], o[j][1]);
    if (rb < p.rows) *reinterpret_cast<float2*>(wa + 8 * kD) = make_float2(o[j][2], o[j][3]);
  }
  if (t4 == 0) {
    red_m[warp * 16 + g] = m_a;
    red_m[warp * 16 + g + 8] = m_b;
    red_l[warp * 16 + g] = l_a;
    red_l[warp * 16 + g + 8] = l_b;
  }
  __syncthreads();
  for (int idx = tid * 2; idx < 16 * kD; idx += 256) {
    const int r = idx / kD, d = idx % kD;
    if (row0 + r >= p.rows) continue;
    float mx = kNegInf;
#pragma unroll
    for (int w = 0; w < 4; ++w) mx = fmaxf(mx, red_m[w * 16 + r]);
    float l = 0.f, x0 = 0.f, x1 = 0.f;
    if (mx != kNegInf) {
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float f = ex2(red_m[w * 16 + r] - mx);  // a warp that saw nothing: -inf -> 0
        l += red_l[w * 16 + r] * f;
        x0 += red_o[(w * 16 + r) * kD + d] * f;
        x1 += red_o[(w * 16 + r) * kD + d + 1] * f;
      }
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    write_row<T, kD>(p, out_row(p, b, hkv, row0 + r), d, x0 * inv, x1 * inv, l > 0.f ? mx + log2f(l) : kNegInf, d == 0);
  }
  if (p.fused || p.dynamic) combine_if_last<T, kD, kWarpSplit ? (kD == 128 ? 32 : 16) : 8>(p, b, hkv, row0, row_end, p.fused);
}

// Separate split combine (64-row decode CTAs): D/4 threads per row, each merging 4 columns (merge_splits).
template <typename T>
__global__ void __launch_bounds__(128) attn_combine_kernel(T* out, const float* o_part, const float* lse_part,
                                                          int64_t rows, int D, int splits) {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");  // the split grid finished and its stores are visible
#endif
  const int per_row = D / 4;
  const int64_t row = int64_t(blockIdx.x) * (128 / per_row) + threadIdx.x / per_row;
  if (row >= rows || threadIdx.x >= (128 / per_row) * per_row) return;
  const int d = (threadIdx.x % per_row) * 4;
  store4(out + row * D + d, merge_splits<16>(o_part, lse_part, rows, D, row, d, splits));
}

// Kernel forms: 64-row CTAs (prefill, and decode with more than 16 packed rows) and the 16-row warp-split
// decode form; the decode forms also with TMA K/V loads (H100/H200, D 64 or 128).
enum class MmaForm { rows64, warp_split, rows64_tma, warp_split_tma };

template <typename T, int kD, MmaForm kF>
struct MmaKernel {
  static constexpr bool kWS = kF == MmaForm::warp_split || kF == MmaForm::warp_split_tma;
  static constexpr bool kTma = kF == MmaForm::rows64_tma || kF == MmaForm::warp_split_tma;
  static constexpr int kSmem = MmaCfg<kD, kWS, kTma>::kSmem;
  static constexpr auto kernel = attn_mma_kernel<T, kD, kWS, kTma>;
  static Status launch(const MmaParams& p, const CUtensorMap& mk, const CUtensorMap& mv, dim3 grid, cudaStream_t stream) {
    static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (attr != cudaSuccess) return status_from_cuda(attr, "attention (mma shared memory)");
    kernel<<<grid, 128, kSmem, stream>>>(p, mk, mv);
    return status_from_cuda(cudaGetLastError(), "attention (mma launch)");
  }
  static int ctas_per_sm() {
    int n = 0;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, 128, kSmem) != cudaSuccess) n = 1;
    cudaGetLastError();
    return std::max(1, n);
  }
};

// The decode forms exist for D 64 and 128 (decode takes D <= 128); the 64-row form also for 256.
template <typename T, template <typename, int, MmaForm> class Op, typename R, typename... A>
R with_mma(int D, MmaForm f, A... a) {
  switch (f) {
    case MmaForm::warp_split:
      return D == 64 ? Op<T, 64, MmaForm::warp_split>::run(a...) : Op<T, 128, MmaForm::warp_split>::run(a...);
    case MmaForm::warp_split_tma:
      return D == 64 ? Op<T, 64, MmaForm::warp_split_tma>::run(a...) : Op<T, 128, MmaForm::warp_split_tma>::run(a...);
    case MmaForm::rows64_tma:
      return D == 64 ? Op<T, 64, MmaForm::rows64_tma>::run(a...) : Op<T, 128, MmaForm::rows64_tma>::run(a...);
    default:
      return D == 64 ? Op<T, 64, MmaForm::rows64>::run(a...)
                     : D == 128 ? Op<T, 128, MmaForm::rows64>::run(a...) : Op<T, 256, MmaForm::rows64>::run(a...);
  }
}
template <typename T, int kD, MmaForm kF>
struct LaunchOp {
  static Status run(const MmaParams& p, const CUtensorMap* mk, const CUtensorMap* mv, dim3 grid, cudaStream_t st) {
    return MmaKernel<T, kD, kF>::launch(p, *mk, *mv, grid, st);
  }
};
template <typename T, int kD, MmaForm kF>
struct OccupancyOp {
  static int run() { return MmaKernel<T, kD, kF>::ctas_per_sm(); }
};

Status launch_mma_d(const MmaParams& p, const CUtensorMap* mk, const CUtensorMap* mv, bool bf, int D, MmaForm f, dim3 grid,
                    cudaStream_t st) {
  return bf ? with_mma<__nv_bfloat16, LaunchOp, Status>(D, f, p, mk, mv, grid, st)
            : with_mma<__half, LaunchOp, Status>(D, f, p, mk, mv, grid, st);
}

// Resident CTAs per SM of the mma kernel for this configuration (1 if the query fails); cached.
int mma_ctas_per_sm(int64_t D, MmaForm f, AttnDtype dt) {
  static int cache[2][4][2] = {};
  const bool bf = dt == AttnDtype::bfloat16;
  int& c = cache[D == 128][int(f)][bf];
  if (c == 0) c = bf ? with_mma<__nv_bfloat16, OccupancyOp, int>(int(D), f) : with_mma<__half, OccupancyOp, int>(int(D), f);
  return c;
}

// A tuning knob from the environment (A/B runs, cuda/dev/NOTES.md): its integer value if set and within
// [lo, hi], else def.
int env_knob(const char* name, int def, int lo, int hi) {
  const char* e = std::getenv(name);
  if (!e) return def;
  const int v = std::atoi(e);
  return v >= lo && v <= hi ? v : def;
}

}  // namespace

namespace attn_detail {

// mma / decode: both the prefill (64 rows, no split) and the split-KV decode form.
Status launch_mma(void* o, const void* q, const void* k, const void* v, const AttnShape& s, bool decode,
                  cudaStream_t stream) {
  MmaParams p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = o;
  p.Hq = int(s.Hq);
  p.Hkv = int(s.Hkv);
  p.Sq = int(s.Sq);
  p.Sk = int(s.Sk);
  p.group = int(s.Hq / s.Hkv);
  p.rows = int(p.group * s.Sq);
  p.kv_offset = int(s.kv_offset);
  p.causal = s.causal ? 1 : 0;
  p.scale_log2 = s.scale * 1.4426950408889634f;
  // decode with <= 16 packed rows: 16-row CTAs whose 4 warps split each KV tile; more rows: 64-row CTAs
  // (K/V read once per 64 rows), still split-KV across CTAs.
  // TESSERA_ATTN_WS_ROWS (tuning knob, default 16): packed rows up to which the 16-row form is used (more
  // than 16: several 16-row CTAs per KV column, which read the same K/V tiles at about the same time).
  static const int ws_rows = env_knob("TESSERA_ATTN_WS_ROWS", 16, 16, 64);
  // TESSERA_ATTN_L2PF (tuning knob: 0, 128 or 256, default 0): L2 prefetch hint of the K/V copies.
  static const int l2pf = [] {
    const int v = env_knob("TESSERA_ATTN_L2PF", 0, 0, 256);
    return v == 128 || v == 256 ? v : 0;
  }();
  // TESSERA_ATTN_SPLIT_ROUND (tuning knob, default 64): keys per split are a multiple of this.
  static const int split_round = env_knob("TESSERA_ATTN_SPLIT_ROUND", 64, 1, 1024);
  p.l2_prefetch = decode ? l2pf : 0;
  const bool warp_split = decode && p.rows <= ws_rows;
  // Decode K/V through TMA where the Hopper kernel's conditions hold (sm_90a code on the device, D 64 or 128,
  // K/V bases the map accepts); TESSERA_ATTN_DECODE_TMA=0 (A/B knob): 16-byte cp.async instead.
  static const bool tma_on = env_knob("TESSERA_ATTN_DECODE_TMA", 1, 0, 1) == 1;
  CUtensorMap mk{}, mv{};
  const bool tma = decode && tma_on && (s.D == 64 || s.D == 128) && attn_detail::sm90_available() &&
                   attn_detail::encode_map(&mk, k, s.dtype, s.B * s.Hkv, s.Sk, s.D, 64) &&
                   attn_detail::encode_map(&mv, v, s.dtype, s.B * s.Hkv, s.Sk, s.D, 64);
  const MmaForm form = warp_split ? (tma ? MmaForm::warp_split_tma : MmaForm::warp_split)
                                  : (tma ? MmaForm::rows64_tma : MmaForm::rows64);
  const int rows_per_cta = warp_split ? 16 : 64;
  const int64_t row_tiles = (p.rows + rows_per_cta - 1) / rows_per_cta;
  const int64_t base_ctas = row_tiles * s.B * s.Hkv;
  int64_t kv_vis = s.causal ? std::min<int64_t>(s.Sk, s.kv_offset + s.Sq) : s.Sk;
  kv_vis = std::max<int64_t>(kv_vis, 1);
  int splits = 1;
  if (decode) {
    // As many splits as fit in ONE wave of resident CTAs (a second, partial wave would leave most SMs
    // idle while it drains); splits of at least 256 keys, at most 128 of them.
    // TESSERA_ATTN_SPLIT_WAVES (tuning knob, default 1): size the splits to that many waves instead.
    static const int waves = env_knob("TESSERA_ATTN_SPLIT_WAVES", 1, 1, 8);
    const int64_t slots = int64_t(std::max(1, device_sm_count())) * mma_ctas_per_sm(s.D, form, s.dtype) * waves;
    splits = int(std::max<int64_t>(1, std::min<int64_t>({slots / base_ctas, (kv_vis + 255) / 256, 128})));
  }
  const int kTile = split_round;
  p.split_keys = int((((kv_vis + splits - 1) / splits) + kTile - 1) / kTile * kTile);
  p.splits = int((kv_vis + p.split_keys - 1) / p.split_keys);
  if (p.splits < 1) p.splits = 1;
  if (!decode) p.split_keys = int(s.Sk), p.splits = 1;
  // TESSERA_ATTN_DECODE_DYN=0 (A/B knob): static splits of split_keys keys instead of the dynamic schedule.
  static const bool dyn_on = [] {
    const char* e = std::getenv("TESSERA_ATTN_DECODE_DYN");
    return !(e && std::string(e) == "0");
  }();
  // Dynamic only for the 16-row form with >= 8 tiles per CTA: with fewer (B1 Sk8192: 4) the strided start
  // measured 12% slower than contiguous splits, and the 64-row form (2 stages) 15% slower (v6 runs).
  const int64_t tiles_per_cta = (kv_vis + 63) / 64 / p.splits;
  p.dynamic = p.splits > 1 && dyn_on && warp_split && tiles_per_cta >= 8 && base_ctas <= kMaxSplitTiles ? 1 : 0;

  const dim3 grid(unsigned(row_tiles), unsigned(s.B * s.Hkv), unsigned(p.splits));
  const bool bf = s.dtype == AttnDtype::bfloat16;
  if (p.splits == 1) {
    return launch_mma_d(p, &mk, &mv, bf, int(s.D), form, grid, stream);
  }
  const int64_t rows_total = s.B * s.Hq * s.Sq;
  // Combine: fused into the last CTA of each column (no second launch) for the 16-row warp-split form, where
  // a column has <= 16 rows to merge; the separate kernel for 64-row CTAs, whose one-CTA merge of up to 64
  // rows measured slower than a parallel kernel (cuda/dev/NOTES.md, v5). TESSERA_ATTN_DECODE_COMBINE=kernel
  // or =fused forces one (A/B measurements). Counters cover kMaxSplitTiles columns.
  static const int combine_mode = [] {
    const char* e = std::getenv("TESSERA_ATTN_DECODE_COMBINE");
    if (e && std::string(e) == "kernel") return 1;
    if (e && std::string(e) == "fused") return 2;
    return 0;
  }();
  p.fused = base_ctas <= kMaxSplitTiles && (combine_mode == 2 || (combine_mode == 0 && warp_split)) ? 1 : 0;
  // Workspace: a grow-only buffer kept across calls (no allocator work in the stream per call; at most
  // ~slots * 64 rows * (D + 1) floats, < 10 MB); launches are ordered on the one backend stream.
  // TESSERA_ATTN_DECODE_WS=async: cudaMallocAsync/cudaFreeAsync per call instead (the v4 behaviour).
  static const bool ws_async = [] {
    const char* e = std::getenv("TESSERA_ATTN_DECODE_WS");
    return e && std::string(e) == "async";
  }();
  static void* ws_keep = nullptr;
  static size_t ws_keep_bytes = 0;
  void* ws = nullptr;
  const size_t ws_bytes = size_t(p.splits) * rows_total * (s.D + 1) * sizeof(float);
  Status st;
  if (ws_async) {
    st = status_from_cuda(cudaMallocAsync(&ws, ws_bytes, stream), "attention (split-KV workspace)");
    if (!st.ok()) return st;
  } else {
    if (ws_bytes > ws_keep_bytes) {
      if (ws_keep) {
        st = status_from_cuda(cudaStreamSynchronize(stream), "attention (split-KV workspace)");
        if (!st.ok()) return st;
        cudaFree(ws_keep);
        ws_keep = nullptr;
        ws_keep_bytes = 0;
      }
      st = status_from_cuda(cudaMalloc(&ws_keep, ws_bytes), "attention (split-KV workspace)");
      if (!st.ok()) return st;
      ws_keep_bytes = ws_bytes;
    }
    ws = ws_keep;
  }
  p.o_part = static_cast<float*>(ws);
  p.lse_part = p.o_part + size_t(p.splits) * rows_total * s.D;
  st = launch_mma_d(p, &mk, &mv, bf, int(s.D), form, grid, stream);
  if (st.ok() && !p.fused) {
    // Launched as a programmatic dependent of the split grid (sm_90+): its CTAs are resident and waiting when
    // the split grid ends, instead of a launch after it (the gap between the two kernels).
    const int64_t rows_per_cta = 128 / (s.D / 4);
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned((rows_total + rows_per_cta - 1) / rows_per_cta));
    cfg.blockDim = dim3(128);
    cfg.stream = stream;
    cudaLaunchAttribute pdl[1];
    pdl[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    pdl[0].val.programmaticStreamSerializationAllowed = 1;
    static const bool pdl_ok = [] {
      int major = 0;
      return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess && major >= 9 &&
             env_knob("TESSERA_ATTN_COMBINE_PDL", 1, 0, 1) == 1;
    }();
    cfg.attrs = pdl;
    cfg.numAttrs = pdl_ok ? 1 : 0;
    const cudaError_t e = bf ? cudaLaunchKernelEx(&cfg, attn_combine_kernel<__nv_bfloat16>, static_cast<__nv_bfloat16*>(o),
                                                  static_cast<const float*>(p.o_part), static_cast<const float*>(p.lse_part),
                                                  rows_total, int(s.D), p.splits)
                             : cudaLaunchKernelEx(&cfg, attn_combine_kernel<__half>, static_cast<__half*>(o),
                                                  static_cast<const float*>(p.o_part), static_cast<const float*>(p.lse_part),
                                                  rows_total, int(s.D), p.splits);
    st = status_from_cuda(e, "attention (combine launch)");
  }
  if (ws_async) cudaFreeAsync(ws, stream);  // stream-ordered: freed after the combine ran
  return st;
}

}  // namespace attn_detail
}  // namespace tessera_cuda
