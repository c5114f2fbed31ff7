// attention.cu: attention forward dispatch: which kernel runs (resolve, measured on H100), what each one
// supports, the bounds and alignment checks, and the timing loop the benchmarks use. Kernels:
// attention_mma.cu (portable mma.sync, split-KV decode) and attention_sm90.cu (Hopper TMA + wgmma).
#include "attention.cuh"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace tessera_cuda {

namespace {

// auto: measured on H100 (cuda/dev/NOTES.md). Few query rows against a long cache go to the split-KV
// decode kernel, except plain multi-head attention with enough heads to fill the GPU, where the sm90 kernel
// (one CTA per head, KV read once) streams at full bandwidth; everything else to the tuned sm90 kernel.
AttnVariant resolve(const AttnShape& s, AttnVariant v) {
  if (v != AttnVariant::automatic) return v;
  const bool sm90 = attention_unsupported(s, AttnVariant::sm90s3).empty();
  const AttnVariant best90 = s.D == 64 ? AttnVariant::sm90w3 : AttnVariant::sm90s3;
  if (s.Sq <= 16 && attention_unsupported(s, AttnVariant::decode).empty()) {
    const bool mha_fills_gpu = s.Hq == s.Hkv && s.B * s.Hq >= 2 * int64_t(std::max(1, device_sm_count()));
    return sm90 && mha_fills_gpu ? best90 : AttnVariant::decode;
  }
  return sm90 ? best90 : AttnVariant::mma;
}

}  // namespace

const char* attention_variant_name(AttnVariant v) {
  switch (v) {
    case AttnVariant::mma: return "flash_attention_mma_sm80";
    case AttnVariant::decode: return "flash_decoding_split_kv";
    case AttnVariant::sm90: return "flash_attention_sm90_wgmma";
    case AttnVariant::sm90pp: return "flash_attention_sm90_wgmma_pingpong";
    case AttnVariant::sm90s3: return "flash_attention_sm90_wgmma_pingpong_3stage";
    case AttnVariant::sm90w3: return "flash_attention_sm90_wgmma_3consumers";
    default: return "auto";
  }
}

std::string attention_unsupported(const AttnShape& s, AttnVariant v) {
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (s.B < 1 || s.Hq < 1 || s.Hkv < 1 || s.Sq < 1 || s.Sk < 1 || s.D < 1 || s.Dv < 1) return "empty tensor";
  if (s.Hq % s.Hkv != 0) return "Hq must be a multiple of Hkv";
  if (s.D != s.Dv) return "D != Dv";
  if (s.D != 64 && s.D != 128 && s.D != 256) return "head dim must be 64, 128 or 256";
  if (s.Sq > kIntMax / 2 || s.Sk > kIntMax / 2 || std::llabs(s.kv_offset) > kIntMax / 4 ||
      s.Hq * s.Sq > kIntMax / 2)
    return "sequence too long";
  if (s.B * s.Hkv > 65535 || s.B * s.Hq > 65535) return "B * H > 65535";
  if (!std::isfinite(s.scale)) return "non-finite scale";
  for (int64_t off : {s.q_off, s.k_off, s.v_off, s.o_off})
    if (off % 8 != 0) return "tensor offset not 16-byte aligned";
  int dev_major = 0;
  if (device_ready().ok()) cudaDeviceGetAttribute(&dev_major, cudaDevAttrComputeCapabilityMajor, 0);
  if (dev_major < 8) return "needs a GPU of compute capability 8.0 or newer";
  switch (v) {
    case AttnVariant::automatic:
    case AttnVariant::mma: return "";
    case AttnVariant::decode: return s.D <= 128 ? "" : "decode kernel takes D <= 128";
    case AttnVariant::sm90:
    case AttnVariant::sm90pp:
    case AttnVariant::sm90s3:
    case AttnVariant::sm90w3:
      if (!attn_detail::sm90_available()) return "sm90 kernel needs an sm_90 GPU (H100/H200) and this build's sm_90a code";
      if (s.D > 128) return "sm90 kernel takes D in {64, 128}";
      if (v == AttnVariant::sm90w3 && s.D != 64) return "sm90w3 takes D = 64";
      if (!(s.scale > 0.f)) return "sm90 kernel takes scale > 0";
      return "";
  }
  return "unknown variant";
}

Status attention_forward(DeviceBuffer* out, const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v,
                         const AttnShape& s, AttnVariant variant, AttnVariant* ran) {
  Status st = device_ready();
  if (!st.ok()) return st;
  const std::string why = attention_unsupported(s, variant);
  if (!why.empty()) return status_error(Code::arg, "attention: " + why);
  const int64_t nq = s.B * s.Hq * s.Sq * s.D, nk = s.B * s.Hkv * s.Sk * s.D;
  const struct {
    const DeviceBuffer* buf;
    int64_t off, n;
    const char* what;
  } views[] = {{&q, s.q_off, nq, "attention (q)"}, {&k, s.k_off, nk, "attention (k)"},
               {&v, s.v_off, nk, "attention (v)"}, {out, s.o_off, nq, "attention (out)"}};
  for (const auto& x : views) {
    if (x.off < 0) return status_error(Code::arg, std::string(x.what) + ": negative offset");
    st = buffer_check(*x.buf, size_t(x.off) * 2, size_t(x.n) * 2, x.what);
    if (!st.ok()) return st;
  }
  auto at = [](const DeviceBuffer& b, int64_t off) { return static_cast<char*>(b.ptr) + off * 2; };
  void* o = at(*out, s.o_off);
  const void *qp = at(q, s.q_off), *kp = at(k, s.k_off), *vp = at(v, s.v_off);
  for (const void* ptr : {static_cast<const void*>(o), qp, kp, vp}) {
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return status_error(Code::arg, "attention: a tensor is not 16-byte aligned");
  }
  cudaStream_t stream = device_stream();
  const AttnVariant chosen = resolve(s, variant);
  if (ran) *ran = chosen;
  switch (chosen) {
    case AttnVariant::sm90:
    case AttnVariant::sm90pp:
    case AttnVariant::sm90s3:
    case AttnVariant::sm90w3: return attn_detail::launch_sm90(o, qp, kp, vp, s, chosen, stream);
    case AttnVariant::decode: return attn_detail::launch_mma(o, qp, kp, vp, s, true, stream);
    default: return attn_detail::launch_mma(o, qp, kp, vp, s, false, stream);
  }
}

Status attention_time(float* ms, int iters, int warmup, AttnVariant* ran, DeviceBuffer* out, const DeviceBuffer& q,
                      const DeviceBuffer& k, const DeviceBuffer& v, const AttnShape& s, AttnVariant variant) {
  Status st = device_ready();
  if (!st.ok()) return st;
  *ran = resolve(s, variant);
  for (int i = 0; i < warmup; ++i) {
    st = attention_forward(out, q, k, v, s, *ran);
    if (!st.ok()) return st;
  }
  std::vector<cudaEvent_t> ev(2 * size_t(iters));
  for (auto& e : ev) {
    st = status_from_cuda(cudaEventCreate(&e), "attention_time (event)");
    if (!st.ok()) return st;
  }
  for (int i = 0; i < iters && st.ok(); ++i) {
    cudaEventRecord(ev[2 * i], device_stream());
    st = attention_forward(out, q, k, v, s, *ran);
    cudaEventRecord(ev[2 * i + 1], device_stream());
  }
  if (st.ok()) st = status_from_cuda(cudaStreamSynchronize(device_stream()), "attention_time (sync)");
  for (int i = 0; i < iters && st.ok(); ++i) st = status_from_cuda(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]), "attention_time (elapsed)");
  for (auto& e : ev) cudaEventDestroy(e);
  return st;
}

}  // namespace tessera_cuda
