// attention.cuh: fused scaled-dot-product attention forward (flash attention) on the backend stream.
//
//   q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] -> out [B, Hq, Sq, Dv], all contiguous,
//   float16 or bfloat16, fp32 accumulation, output in the input dtype (PyTorch SDPA layout).
//   GQA/MQA: Hq % Hkv == 0, query head h reads kv head h / (Hq / Hkv).
//   causal: query i sees key j iff j <= kv_offset + i (kv_offset = Sk - Sq aligns the diagonal to the end).
//   A query row that sees no key outputs zeros (torch gives NaN there).
//
// Kernels (attention_mma.cu, attention_sm90.cu; dispatch in attention.cu); `variant` forces one, for tests and benchmarks:
//   auto    Sq <= 16: decode (the sm90 kernel for many MHA heads); else the sm90 kernel where it applies
//           (H100/H200, D == Dv in {64, 128}, scale > 0: sm90s3 at D=128, sm90w3 at D=64); else mma
//   mma     FA2-style mma.sync kernel, any sm_80+ GPU, D == Dv in {64, 128, 256}, any scale
//   decode  the mma kernel in split-KV form (flash decoding): KV cut among CTAs and warps, then combined
//           (by the last CTA of each column to finish for <= 16 packed rows, else by a second kernel)
//   sm90    TMA + wgmma, producer/consumer warpgroups, intra-warpgroup softmax/GEMM overlap
//   sm90pp  sm90 plus ping-pong scheduling of the two consumer warpgroups
//   sm90s3  sm90pp with one more K/V stage (3 at D=128, 4 at D=64): the default at D=128
//   sm90w3  sm90s3 with 3 consumer warpgroups (192 query rows per CTA, 160 registers each), D=64 only:
//           the default at D=64, where the softmax is relatively twice as costly and more warps hide it
#pragma once

#include <cuda.h>  // CUtensorMap (attn_detail::encode_map)

#include <cstddef>
#include <cstdint>
#include <string>

#include "device.cuh"
#include "memory.cuh"

namespace tessera_cuda {

enum class AttnDtype { float16 = 0, bfloat16 = 1 };
enum class AttnVariant { automatic = 0, mma = 1, decode = 2, sm90 = 3, sm90pp = 4, sm90s3 = 5, sm90w3 = 7 };

struct AttnShape {
  AttnDtype dtype = AttnDtype::bfloat16;
  int64_t B = 0, Hq = 0, Hkv = 0, Sq = 0, Sk = 0, D = 0, Dv = 0;
  bool causal = false;
  float scale = 0.f;
  int64_t kv_offset = 0;
  // element offsets of q, k, v, out inside their buffers (tensor views)
  int64_t q_off = 0, k_off = 0, v_off = 0, o_off = 0;
};

// Why `variant` cannot run this shape here ("" when it can). Checks shapes and dtypes only, not buffers.
std::string attention_unsupported(const AttnShape& s, AttnVariant variant);

// Queues the attention on the backend stream. Checks every buffer bound; returns Code::arg with the
// reason from attention_unsupported for what the kernels do not handle. *ran (optional): the kernel chosen.
Status attention_forward(DeviceBuffer* out, const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v,
                         const AttnShape& s, AttnVariant variant, AttnVariant* ran = nullptr);

// Benchmark helper: runs attention_forward `iters` times after `warmup` runs, each launch between two
// CUDA events; writes each launch's milliseconds to ms[0..iters) and the variant that ran to *ran.
Status attention_time(float* ms, int iters, int warmup, AttnVariant* ran, DeviceBuffer* out, const DeviceBuffer& q,
                      const DeviceBuffer& k, const DeviceBuffer& v, const AttnShape& s, AttnVariant variant);

const char* attention_variant_name(AttnVariant v);

// ---- internal: between attention.cu, attention_mma.cu and attention_sm90.cu ----
namespace attn_detail {
// True when this build holds sm_90a code and device 0 runs it.
bool sm90_available();
// TMA map of a [BH, S, D] contiguous tensor: boxes of {64 columns, rows, 1}, 128-byte swizzle, zero fill past
// the edges. False when the driver has no encoder or refuses the layout (e.g. a base not 16-byte aligned).
bool encode_map(CUtensorMap* map, const void* base, AttnDtype dt, int64_t BH, int64_t S, int64_t D, int rows);
// The mma.sync kernel (attention_mma.cu): prefill form, or the split-KV decode forms when decode; pointers
// already offset and bounds-checked.
Status launch_mma(void* o, const void* q, const void* k, const void* v, const AttnShape& s, bool decode,
                  cudaStream_t stream);
// Launches the Hopper kernel variant `var`; pointers already offset and bounds-checked.
Status launch_sm90(void* o, const void* q, const void* k, const void* v, const AttnShape& s, AttnVariant var,
                   cudaStream_t stream);
}  // namespace attn_detail

}  // namespace tessera_cuda
