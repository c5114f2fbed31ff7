// attention_sm90.cu: flash-attention forward for Hopper (sm_90a): TMA + wgmma, warp-specialized.
//
// Algorithm (FlashAttention-3 style, written for tessera): one CTA per (64*kWG query rows, b, h); 1 + kWG
// warpgroups (kWG = 2, or 3 at D = 64).
//   WG0 producer (setmaxnreg 24): one thread issues TMA (cp.async.bulk.tensor) loads of the Q tile once and
//     of K/V tiles (128 keys) into a kStages-deep ring of shared-memory stages; each load completes on an
//     mbarrier (full), consumers free a stage by arriving on its empty mbarrier. The ring depth decided
//     the most: 2 -> 3 stages at D=128 took B4 H16 S4096 from 522 to 672 TFLOP/s (ncu: L2 at 24% of its
//     bandwidth with 2 stages, so load latency, not bandwidth, was exposed).
//   WG1..kWG consumers (setmaxnreg 240, or 160 with 3 consumers): 64 query rows each. S = Q K^T by wgmma (both operands from
//     shared memory, K-major, 128B swizzle); online softmax in registers with exp2 and scale*log2(e) folded
//     into one FFMA; O += P V by wgmma with P from registers (the S accumulator layout is the A-operand
//     layout) and V from shared memory as an N-major (transposed) operand.
//   Overlap: intra-warpgroup pipelining - the S GEMM of block j+1 and the PV GEMM of block j are in flight
//     while the softmax of block j+1 runs; `pingpong` adds named barriers so the consumer warpgroups take
//     turns (round robin) issuing GEMMs: one's softmax hides under the others' GEMMs.
//   Causal: key blocks past the tile's last visible key are never loaded; blocks are walked from the last
//     to the first so the few masked blocks (diagonal, partial Sk tile) come first.
//   Epilogue: O / l to bf16/f16 in the (swizzled) Q tile's shared memory, then a TMA store; the 3-D tensor
//     maps [B*H, S, D] zero-fill loads and clip stores past S, so any S works without padding.
// Layouts: q/k/v/o contiguous [B, H, S, D]; shared tiles are 64-column chunks of rows of 128 bytes
// (TMA box {64, rows}), 1024-byte aligned for the 128B swizzle. Tolerance: bf16 P and inputs, fp32
// accumulation: ~3e-3 relative L2 against float64 (torch's flash kernel is the same).
// Roofline (H100 SXM, measured): ~800 TFLOP/s bf16 dense (cuBLAS 8192^3), 3.0 TB/s HBM. B4 H16 S4096 D128:
// 550 GFLOP -> 0.69 ms at the matrix peak; 268 MB moved -> 0.09 ms: compute bound. The softmax's exp2 runs
// on the MUFU (16/clk/SM): 64x128 exps per 2x64x128x128 MACs is ~1/4 of the wgmma time at D=128 (1/2 at
// D=64), which is why it must overlap the GEMMs rather than follow them.
#include <cuda.h>  // CUtensorMap and its enums only: the encoder comes from cudaGetDriverEntryPointByVersion
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <mutex>

#include "attention.cuh"
#include "tma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TC_SM90_DEVICE 1
#include "attention_wgmma.cuh"
#endif

namespace tessera_cuda {

namespace {


struct Sm90Params {
  int Hq, Hkv, Sq, Sk, group, kv_offset, m_blocks;
  float scale_log2;
};

// kWG consumer warpgroups of 64 query rows (kBM rows per CTA), kBN keys per K/V stage, kStages stages.
template <int kD, int kBN, int kStages_, int kWG_ = 2>
struct Cfg {
  static constexpr int kWG = kWG_;
  static constexpr int kBM = 64 * kWG;
  static constexpr int kThreads = 128 * (kWG + 1);
  static constexpr int kStages = kStages_;
  static constexpr int kQBytes = kBM * kD * 2;
  static constexpr int kKVBytes = kBN * kD * 2;
  static constexpr int kBarBytes = 8 * (1 + 3 * kStages);
  static constexpr int kSmem = 1024 /*alignment slack*/ + kQBytes + 2 * kStages * kKVBytes + kBarBytes;
  static_assert(kSmem <= 227 * 1024, "shared memory");
  static_assert((kBN * 128) % 1024 == 0, "128B-swizzle atoms");
};

#ifdef TC_SM90_DEVICE
namespace dev {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
using namespace tma;  // mbarrier and TMA wrappers (tma.cuh)
__device__ __forceinline__ void named_sync(int id, int n) { asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void named_arrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Pins registers at this point: the compiler must not move their uses across an async wgmma boundary.
template <int N>
__device__ __forceinline__ void pin(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void pin(uint32_t (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
// Shared-memory matrix descriptor, 128-byte swizzle. Addresses and offsets in bytes.
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t((lbo & 0x3FFFF) >> 4) << 16) |
         (uint64_t((sbo & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);
}
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
template <typename T>
__device__ __forceinline__ uint32_t pack2(float a, float b);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float a, float b) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float a, float b) {
  __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}

// One consumer warpgroup's online-softmax state: rows a (= r) and b (= r + 8) of each thread.
struct RowState {
  float m_a, m_b, l_a, l_b;
};

// s (64x128 block of scores, wgmma D layout) -> unnormalized probabilities in place; returns the factor
// by which earlier O rows must be scaled. Masked entries (key >= Sk, or causal key > kv_offset + row) -> 0.
template <int kBN, bool kCausal>
__device__ __forceinline__ void softmax_block(float (&s)[kBN / 2], RowState& st, float& corr_a, float& corr_b,
                                              bool masked, int key0, int row_a, const Sm90Params& p, int lane) {
  const float kNegInf = -__int_as_float(0x7f800000);
  if (masked) {
    const int lim_a = kCausal ? min(p.Sk - 1, p.kv_offset + row_a) : p.Sk - 1;
    const int lim_b = kCausal ? min(p.Sk - 1, p.kv_offset + row_a + 8) : p.Sk - 1;
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j) {
      const int key = key0 + 8 * j + 2 * (lane % 4);
      if (key > lim_a) s[4 * j] = kNegInf;
      if (key + 1 > lim_a) s[4 * j + 1] = kNegInf;
      if (key > lim_b) s[4 * j + 2] = kNegInf;
      if (key + 1 > lim_b) s[4 * j + 3] = kNegInf;
    }
  }
  float mx_a = kNegInf, mx_b = kNegInf;
#pragma unroll
  for (int j = 0; j < kBN / 8; ++j) {
    mx_a = fmaxf(mx_a, fmaxf(s[4 * j], s[4 * j + 1]));
    mx_b = fmaxf(mx_b, fmaxf(s[4 * j + 2], s[4 * j + 3]));
  }
  mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffff, mx_a, 1));
  mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffff, mx_a, 2));
  mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffff, mx_b, 1));
  mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffff, mx_b, 2));
  // scale > 0 (checked on the host), so max(s) * scale_log2 is the max of the scaled scores.
  const float new_a = fmaxf(st.m_a, mx_a * p.scale_log2);
  const float new_b = fmaxf(st.m_b, mx_b * p.scale_log2);
  const float use_a = new_a == kNegInf ? 0.f : new_a;  // a row with nothing visible yet: keep exp2 finite
  const float use_b = new_b == kNegInf ? 0.f : new_b;
  corr_a = ex2(st.m_a - use_a);
  corr_b = ex2(st.m_b - use_b);
  st.m_a = new_a;
  st.m_b = new_b;
  float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
  for (int j = 0; j < kBN / 8; ++j) {
    s[4 * j] = ex2(fmaf(s[4 * j], p.scale_log2, -use_a));
    s[4 * j + 1] = ex2(fmaf(s[4 * j + 1], p.scale_log2, -use_a));
    s[4 * j + 2] = ex2(fmaf(s[4 * j + 2], p.scale_log2, -use_b));
    s[4 * j + 3] = ex2(fmaf(s[4 * j + 3], p.scale_log2, -use_b));
    sum_a += s[4 * j] + s[4 * j + 1];
    sum_b += s[4 * j + 2] + s[4 * j + 3];
  }
  st.l_a = st.l_a * corr_a + sum_a;  // per-thread partial; the 4 threads of a row are summed at the end
  st.l_b = st.l_b * corr_b + sum_b;
}

}  // namespace dev
#endif  // TC_SM90_DEVICE

template <typename T, int kD, int kBN, int kStages, int kWG, bool kCausal, bool kPingPong>
__global__ void __launch_bounds__(128 * (kWG + 1), 1)
    attn_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                     const __grid_constant__ CUtensorMap tm_v, const __grid_constant__ CUtensorMap tm_o,
                     const Sm90Params p) {
#ifdef TC_SM90_DEVICE
  using namespace dev;
  using C = Cfg<kD, kBN, kStages, kWG>;
  constexpr int S = C::kStages;
  constexpr int kBM = C::kBM;
  constexpr int kChunks = kD / 64;  // 64-column (128-byte) chunks of a row
  extern __shared__ uint8_t smem_raw[];
  const uint32_t sQ = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = sQ + C::kQBytes;
  const uint32_t sV = sK + S * C::kKVBytes;
  const uint32_t bars = sV + S * C::kKVBytes;
  const uint32_t q_full = bars;
  auto k_full = [&](int st) { return bars + 8u * (1 + st); };
  auto v_full = [&](int st) { return bars + 8u * (1 + S + st); };
  auto empty = [&](int st) { return bars + 8u * (1 + 2 * S + st); };

  const int m_block = p.m_blocks - 1 - int(blockIdx.x);  // causal: the longest rows start first
  const int bh = blockIdx.y;                               // b * Hq + h
  const int bh_kv = (bh / p.Hq) * p.Hkv + (bh % p.Hq) / p.group;
  const int m0 = m_block * kBM;
  int n_max = (p.Sk + kBN - 1) / kBN;
  if (kCausal) {
    const int last = p.kv_offset + min(m0 + kBM, p.Sq) - 1;  // the last key any row of the tile sees
    n_max = last < 0 ? 0 : min(n_max, last / kBN + 1);
  }
  const int wg = threadIdx.x / 128, warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  if (threadIdx.x == 0) {
    mbar_init(q_full, 1);
    for (int st = 0; st < S; ++st) {
      mbar_init(k_full(st), 1);
      mbar_init(v_full(st), 1);
      mbar_init(empty(st), 4 * kWG);  // one arrival per consumer warp
    }
    fence_mbar_init();
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ---------------- producer ----------------
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (warp == 0 && lane == 0 && n_max > 0) {
      mbar_expect_tx(q_full, C::kQBytes);
      for (int c = 0; c < kChunks; ++c) tma_load(sQ + c * kBM * 128, &tm_q, c * 64, m0, bh, q_full);
      for (int it = 0; it < n_max; ++it) {
        const int st = it % S, n = n_max - 1 - it;
        mbar_wait(empty(st), ((it / S) & 1) ^ 1);
        mbar_expect_tx(k_full(st), C::kKVBytes);
        for (int c = 0; c < kChunks; ++c)
          tma_load(sK + st * C::kKVBytes + c * kBN * 128, &tm_k, c * 64, n * kBN, bh_kv, k_full(st));
        mbar_expect_tx(v_full(st), C::kKVBytes);
        for (int c = 0; c < kChunks; ++c)
          tma_load(sV + st * C::kKVBytes + c * kBN * 128, &tm_v, c * 64, n * kBN, bh_kv, v_full(st));
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  if constexpr (kWG == 2) {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");  // 128*24 + 256*240 <= 64K
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 160;\n" ::: "memory");  // 128*24 + 384*160 <= 64K
  }
  const int cw = wg - 1;                         // consumer warpgroup 0 .. kWG-1
  const int r_in = (warp % 4) * 16 + lane / 4;   // this thread's row a within the warpgroup's 64 (b = +8)
  const int r0 = m0 + cw * 64;
  const int row_a = r0 + r_in;
  const uint32_t sQw = sQ + cw * 64 * 128;       // this warpgroup's 64 rows of every Q chunk

  float o[kD / 2];
  float s[kBN / 2];
  uint32_t pf[kBN / 4];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) o[i] = 0.f;
  RowState rs{-__int_as_float(0x7f800000), -__int_as_float(0x7f800000), 0.f, 0.f};

  auto issue_qk = [&](int st) {
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      const uint32_t off = (kk % 4) * 32;  // 16 columns = 32 bytes inside the swizzled row
      const uint64_t da = desc_sw128(sQw + (kk / 4) * kBM * 128 + off, 16, 1024);
      const uint64_t db = desc_sw128(sK + st * C::kKVBytes + (kk / 4) * kBN * 128 + off, 16, 1024);
      sm90::wgmma_ss_n<kBN, T>(s, da, db, kk > 0 ? 1 : 0);
    }
    wg_commit();
  };
  auto issue_pv = [&](int st) {
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      const uint32_t a[4] = {pf[4 * kk], pf[4 * kk + 1], pf[4 * kk + 2], pf[4 * kk + 3]};
      const uint64_t db = desc_sw128(sV + st * C::kKVBytes + kk * 2048, kBN * 128, 1024);
      sm90::wgmma_rs_n<kD, T>(o, a, db);
    }
    wg_commit();
  };
  auto to_p = [&]() {
#pragma unroll
    for (int i = 0; i < kBN / 4; ++i) pf[i] = pack2<T>(s[2 * i], s[2 * i + 1]);
  };
  auto needs_mask = [&](int n) {
    return (n + 1) * kBN > p.Sk || (kCausal && (n + 1) * kBN - 1 > p.kv_offset + r0);
  };
  // ping-pong (round robin over the consumer warpgroups): barrier ids 1..kWG (0 is __syncthreads)
  const int me = 1 + cw, other = 1 + (cw + 1) % kWG;

  if (n_max > 0) {
    float corr_a, corr_b;
    if (kPingPong && cw == kWG - 1) named_arrive(1, 256);  // warpgroup 0 issues first
    mbar_wait(q_full, 0);
    mbar_wait(k_full(0), 0);
    if (kPingPong) named_sync(me, 256);
    issue_qk(0);
    if (kPingPong) named_arrive(other, 256);
    wg_wait<0>();
    pin(s);
    softmax_block<kBN, kCausal>(s, rs, corr_a, corr_b, needs_mask(n_max - 1), (n_max - 1) * kBN, row_a, p, lane);
    to_p();
    for (int it = 1; it < n_max; ++it) {
      const int st = it % S, pst = (it - 1) % S, n = n_max - 1 - it;
      mbar_wait(k_full(st), (it / S) & 1);
      mbar_wait(v_full(pst), ((it - 1) / S) & 1);
      if (kPingPong) named_sync(me, 256);
      issue_qk(st);
      issue_pv(pst);
      if (kPingPong) named_arrive(other, 256);
      wg_wait<1>();
      pin(s);
      softmax_block<kBN, kCausal>(s, rs, corr_a, corr_b, needs_mask(n), n * kBN, row_a, p, lane);
      wg_wait<0>();
      pin(o);
      pin(pf);
      if (lane == 0) mbar_arrive(empty(pst));
#pragma unroll
      for (int j = 0; j < kD / 8; ++j) {
        o[4 * j] *= corr_a;
        o[4 * j + 1] *= corr_a;
        o[4 * j + 2] *= corr_b;
        o[4 * j + 3] *= corr_b;
      }
      to_p();
    }
    const int lst = (n_max - 1) % S;
    mbar_wait(v_full(lst), ((n_max - 1) / S) & 1);
    if (kPingPong) named_sync(me, 256);
    issue_pv(lst);
    if (kPingPong && cw != kWG - 1) named_arrive(other, 256);  // the last one has no later turn to grant
    wg_wait<0>();
    pin(o);
    pin(pf);
    if (lane == 0) mbar_arrive(empty(lst));
  }

  // ---------------- epilogue: O / l -> this warpgroup's rows of the Q tile -> TMA store ----------------
  rs.l_a += __shfl_xor_sync(0xffffffff, rs.l_a, 1);
  rs.l_a += __shfl_xor_sync(0xffffffff, rs.l_a, 2);
  rs.l_b += __shfl_xor_sync(0xffffffff, rs.l_b, 1);
  rs.l_b += __shfl_xor_sync(0xffffffff, rs.l_b, 2);
  const float inv_a = rs.l_a > 0.f ? 1.f / rs.l_a : 0.f;  // no visible key: zeros
  const float inv_b = rs.l_b > 0.f ? 1.f / rs.l_b : 0.f;
  const uint32_t sw = (lane / 4) % 8;  // row % 8 for both rows a and b: the 128B-swizzle phase
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) {
    const uint32_t chunk = sQw + (j / 8) * kBM * 128;
    const uint32_t col = ((uint32_t(j % 8) ^ sw) * 16) + (lane % 4) * 4;
    const uint32_t va = pack2<T>(o[4 * j] * inv_a, o[4 * j + 1] * inv_a);
    const uint32_t vb = pack2<T>(o[4 * j + 2] * inv_b, o[4 * j + 3] * inv_b);
    asm volatile("st.shared.b32 [%0], %1;" ::"r"(chunk + r_in * 128 + col), "r"(va) : "memory");
    asm volatile("st.shared.b32 [%0], %1;" ::"r"(chunk + (r_in + 8) * 128 + col), "r"(vb) : "memory");
  }
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  named_sync(1 + kWG + cw, 128);
  if (threadIdx.x % 128 == 0 && r0 < p.Sq) {
    for (int c = 0; c < kChunks; ++c) tma_store(&tm_o, sQw + c * kBM * 128, c * 64, r0, bh);
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
  }
#endif  // TC_SM90_DEVICE
}

// ---------------- host side ----------------

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) ==
            cudaSuccess &&
        q == cudaDriverEntryPointSuccess) {
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }
    cudaGetLastError();
  });
  return fn;
}

template <typename T, int kD, int kBN, int kSt, int kWG, bool kCausal, bool kPP>
Status launch_one(const CUtensorMap& q, const CUtensorMap& k, const CUtensorMap& v, const CUtensorMap& o,
                  Sm90Params p, int64_t BHq, cudaStream_t stream) {
  using C = Cfg<kD, kBN, kSt, kWG>;
  auto kernel = attn_sm90_kernel<T, kD, kBN, kSt, kWG, kCausal, kPP>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem);
  if (attr != cudaSuccess) return status_from_cuda(attr, "attention (sm90 shared memory)");
  p.m_blocks = (p.Sq + C::kBM - 1) / C::kBM;
  kernel<<<dim3(p.m_blocks, unsigned(BHq)), C::kThreads, C::kSmem, stream>>>(q, k, v, o, p);
  return status_from_cuda(cudaGetLastError(), "attention (sm90 launch)");
}

// Configurations by variant (see attention.cuh): sm90 = 128-key stages, no ping-pong; sm90pp = the same
// with ping-pong; sm90s3 = ping-pong with one more stage (the default); sm90w3 (D = 64 only) = three
// consumer warpgroups, 192 query rows per CTA.
template <typename T, int kD, bool kCausal>
Status launch_cfg(const CUtensorMap& q, const CUtensorMap& k, const CUtensorMap& v, const CUtensorMap& o,
                  const Sm90Params& p, int64_t BHq, AttnVariant var, cudaStream_t st) {
  constexpr int kSt = kD == 64 ? 3 : 2;
  switch (var) {
    case AttnVariant::sm90: return launch_one<T, kD, 128, kSt, 2, kCausal, false>(q, k, v, o, p, BHq, st);
    case AttnVariant::sm90pp: return launch_one<T, kD, 128, kSt, 2, kCausal, true>(q, k, v, o, p, BHq, st);
    case AttnVariant::sm90w3:
      if constexpr (kD == 64) return launch_one<T, kD, 128, 4, 3, kCausal, true>(q, k, v, o, p, BHq, st);
      return status_error(Code::arg, "attention: sm90w3 takes D = 64");
    default: return launch_one<T, kD, 128, kSt + 1, 2, kCausal, true>(q, k, v, o, p, BHq, st);
  }
}

template <typename T, int kD>
Status launch_d(const CUtensorMap& q, const CUtensorMap& k, const CUtensorMap& v, const CUtensorMap& o,
                const Sm90Params& p, int64_t BHq, bool causal, AttnVariant var, cudaStream_t st) {
  return causal ? launch_cfg<T, kD, true>(q, k, v, o, p, BHq, var, st) : launch_cfg<T, kD, false>(q, k, v, o, p, BHq, var, st);
}

}  // namespace

namespace attn_detail {

// [BH, S, D] contiguous, boxes of {64 columns, rows, 1}, 128-byte swizzle, zero fill past the edges.
bool encode_map(CUtensorMap* map, const void* base, AttnDtype dt, int64_t BH, int64_t S, int64_t D, int rows) {
  auto enc = tensor_map_encoder();
  if (!enc) return false;
  const cuuint64_t dims[3] = {cuuint64_t(D), cuuint64_t(S), cuuint64_t(BH)};
  const cuuint64_t strides[2] = {cuuint64_t(D * 2), cuuint64_t(S * D * 2)};
  const cuuint32_t box[3] = {64, cuuint32_t(rows), 1};
  const cuuint32_t estr[3] = {1, 1, 1};
  const CUresult r =
      enc(map, dt == AttnDtype::bfloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3,
          const_cast<void*>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}



bool sm90_available() {
  static bool ok = false;
  static std::once_flag once;
  std::call_once(once, [] {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    cudaFuncAttributes fa;
    // The sm_90a cubin must be the code that loads (a newer GPU would JIT the sm_80 PTX, whose body is empty).
    if (major == 9 && minor == 0 &&
        cudaFuncGetAttributes(&fa, attn_sm90_kernel<__nv_bfloat16, 128, 128, 2, 2, false, false>) == cudaSuccess) {
      ok = fa.binaryVersion == 90 && tensor_map_encoder() != nullptr;
    }
    cudaGetLastError();
  });
  return ok;
}

Status launch_sm90(void* o, const void* q, const void* k, const void* v, const AttnShape& s, AttnVariant var,
                   cudaStream_t stream) {
  CUtensorMap mq, mk, mv, mo;
  const int64_t BHq = s.B * s.Hq, BHkv = s.B * s.Hkv;
  const int kBN = 128;
  const int kBM = var == AttnVariant::sm90w3 ? 192 : 128;
  if (!encode_map(&mq, q, s.dtype, BHq, s.Sq, s.D, kBM) || !encode_map(&mk, k, s.dtype, BHkv, s.Sk, s.D, kBN) ||
      !encode_map(&mv, v, s.dtype, BHkv, s.Sk, s.D, kBN) || !encode_map(&mo, o, s.dtype, BHq, s.Sq, s.D, 64)) {
    return status_error(Code::cuda, "attention (sm90): cuTensorMapEncodeTiled failed");
  }
  Sm90Params p;
  p.Hq = int(s.Hq);
  p.Hkv = int(s.Hkv);
  p.Sq = int(s.Sq);
  p.Sk = int(s.Sk);
  p.group = int(s.Hq / s.Hkv);
  p.kv_offset = int(s.kv_offset);
  p.m_blocks = 0;  // per configuration, in launch_one
  p.scale_log2 = s.scale * 1.4426950408889634f;
  const bool bf = s.dtype == AttnDtype::bfloat16;
  if (s.D == 64) {
    return bf ? launch_d<__nv_bfloat16, 64>(mq, mk, mv, mo, p, BHq, s.causal, var, stream)
              : launch_d<__half, 64>(mq, mk, mv, mo, p, BHq, s.causal, var, stream);
  }
  return bf ? launch_d<__nv_bfloat16, 128>(mq, mk, mv, mo, p, BHq, s.causal, var, stream)
            : launch_d<__half, 128>(mq, mk, mv, mo, p, BHq, s.causal, var, stream);
}

}  // namespace attn_detail
}  // namespace tessera_cuda
