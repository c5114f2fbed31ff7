// attention_mma.cuh: building blocks of the mma.sync attention kernel (attention_mma.cu): its parameters,
// shared-memory configuration per form, the cp.async / ldmatrix / mma.sync / TMA wrappers, the swizzled
// K/V addressing, output rows and the split merge (merge_splits). Device code only.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>

#include "tma.cuh"

namespace tessera_cuda {
namespace mma_detail {

struct MmaParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* o_part;    // [splits][B*Hq*Sq][D] normalized partials (splits > 1), else null
  float* lse_part;  // [splits][B*Hq*Sq] log2-sum-exp of each partial
  int Hq, Hkv, Sq, Sk, group, rows, kv_offset, causal, split_keys, splits;
  int fused;        // splits > 1: the last CTA of each (row tile, b, kv head) combines the partials
  int dynamic;      // splits > 1: the CTAs of a column take its KV tiles from a counter (see attn_mma_kernel)
  int l2_prefetch;  // K/V copies ask L2 to fetch this many bytes around each 16-byte piece (0, 128, 256)
  float scale_log2;
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
// The same with an L2 prefetch-size hint: a streaming tile is contiguous, so L2 may fetch whole sectors ahead.
__device__ __forceinline__ void cp_async16_pf(uint32_t dst, const void* src, bool valid, int pf) {
  if (pf == 256) {
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
  } else if (pf == 128) {
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
  } else {
    cp_async16(dst, src, valid);
  }
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// TMA (sm_90): K/V tiles land through the tensor copy engine on one mbarrier per stage (the decode forms on
// H100: a bare streaming probe, cuda/dev/stream_ab.cu, read B1 Sk32768 in 47.6 us this way vs 50.1 us with
// 16-byte cp.async). Compiled to nothing below sm_90, where the host never selects it.
// One stage: expect the bytes of the K and V boxes, then the kD/64 column boxes of each (kKT keys each).
template <int kD, int kKT>
__device__ __forceinline__ void tma_kv(uint32_t k_dst, uint32_t v_dst, const CUtensorMap* mk, const CUtensorMap* mv,
                                       int key0, int bh, uint32_t bar) {
  tma::mbar_expect_tx(bar, 2 * kKT * kD * 2);
#pragma unroll
  for (int h = 0; h < kD / 64; ++h) {
    tma::tma_load(k_dst + h * kKT * 128, mk, h * 64, key0, bh, bar);
    tma::tma_load(v_dst + h * kKT * 128, mv, h * 64, key0, bh, bar);
  }
}
// Shared address of (row, col) in a K/V stage: padded rows (cp.async) or TMA's layout, kD/64 column boxes of
// kKT rows x 128 bytes whose 16-byte chunks are XOR-swizzled by row % 8 (conflict-free ldmatrix either way).
template <int kD, int kKT, bool kTma>
__device__ __forceinline__ uint32_t kv_addr(uint32_t stage, int row, int col) {
  if (!kTma) return stage + row * (kD * 2 + 16) + col * 2;
  const int chunk = col >> 3;
  return stage + (chunk >> 3) * (kKT * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <typename T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float x, float y) {
    __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float x, float y) {
    __half2 h = __floats2half2_rn(x, y);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

// kTma: K/V stages filled by TMA (swizzled, unpadded rows, 1024-byte aligned: kAlign spare bytes) after Q.
template <int kD, bool kWarpSplit, bool kTma = false>
struct MmaCfg {
  static constexpr int kRows = kWarpSplit ? 16 : 64;  // packed query rows per CTA
  static constexpr int kKT = kD == 256 ? 32 : 64;     // keys per tile
  static constexpr int kKW = kWarpSplit ? kKT / 4 : kKT;  // keys per warp per tile
  static constexpr int kStride = kD * 2 + 16;         // bytes per shared Q row, and K/V row without TMA
  // decode streams: one more tile in flight per CTA (bandwidth = bytes in flight / latency)
  static constexpr int kStages = kWarpSplit ? 3 : 2;
  static constexpr int kTile = kKT * (kTma ? kD * 2 : kStride);  // bytes of one K (or V) stage
  static constexpr int kAlign = kTma ? 1024 : 0;
  static constexpr int kSmem = kRows * kStride + kAlign + 2 * kStages * kTile;
  static_assert(!kTma || kD % 64 == 0, "TMA boxes are 64 columns wide");
  static_assert(!kWarpSplit || kD * 16 * 4 * 4 + 2 * 64 * 4 <= 2 * kStages * kTile, "merge space");
};

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Canonical output row ((b*Hq + h)*Sq + i) of packed row r of kv head (b, hkv).
__device__ __forceinline__ int64_t out_row(const MmaParams& p, int b, int hkv, int r) {
  return (int64_t(b) * p.Hq + int64_t(hkv) * p.group + r / p.Sq) * p.Sq + r % p.Sq;
}

template <typename T, int kD>
__device__ __forceinline__ void write_row(const MmaParams& p, int64_t orow, int d, float x0, float x1, float lse,
                                          bool lse_writer) {
  if (p.splits == 1) {
    *reinterpret_cast<uint32_t*>(static_cast<T*>(p.o) + orow * kD + d) = Mma<T>::pack(x0, x1);
  } else {
    const int64_t prow = int64_t(blockIdx.z) * (int64_t(gridDim.y / p.Hkv) * p.Hq * p.Sq) + orow;
    *reinterpret_cast<float2*>(p.o_part + prow * kD + d) = make_float2(x0, x1);
    if (lse_writer) p.lse_part[prow] = lse;
  }
}

// Merge of one row's split partials at 4 columns: out = sum_s 2^(lse_s) O_s / sum_s 2^(lse_s), online over
// chunks of kU splits whose lse and O loads are all issued before any is used (the merge is latency bound:
// one L2 round trip per chunk). Partials come through L2 (__ldcg): other SMs wrote them in this launch.
// Rows no split saw (every lse -inf) -> zeros.
template <int kU>
__device__ __forceinline__ float4 merge_splits(const float* o_part, const float* lse_part, int64_t rows_total, int D,
                                               int64_t row, int d, int S) {
  float m = kNegInf, l = 0.f;
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int s0 = 0; s0 < S; s0 += kU) {
    float lse[kU];
    float4 x[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int64_t sr = int64_t(s0 + u) * rows_total + row;
      const bool ok = s0 + u < S;
      lse[u] = ok ? __ldcg(lse_part + sr) : kNegInf;
      x[u] = ok ? __ldcg(reinterpret_cast<const float4*>(o_part + sr * D + d)) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    float mx = m;
#pragma unroll
    for (int u = 0; u < kU; ++u) mx = fmaxf(mx, lse[u]);
    if (mx == kNegInf) continue;
    const float c = m == kNegInf ? 0.f : ex2(m - mx);
    l *= c;
    acc.x *= c; acc.y *= c; acc.z *= c; acc.w *= c;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const float w = ex2(lse[u] - mx);  // -inf (a split that saw nothing) -> 0
      l += w;
      acc.x += w * x[u].x; acc.y += w * x[u].y; acc.z += w * x[u].z; acc.w += w * x[u].w;
    }
    m = mx;
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
  return make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
}

template <typename T>
__device__ __forceinline__ void store4(T* dst, float4 v) {
  *reinterpret_cast<uint2*>(dst) = make_uint2(Mma<T>::pack(v.x, v.y), Mma<T>::pack(v.z, v.w));
}

}  // namespace mma_detail
}  // namespace tessera_cuda
