/**
 * The cuda backend's 'attention' kernel: fused flash attention from cuda/attention_mma.cu (mma.sync kernel,
 * split-KV decode) and cuda/attention_sm90.cu (TMA + wgmma on H100/H200), chosen per shape by the addon.
 * Takes contiguous float16/bfloat16 q, k, v in the SDPA layout [B, H, S, D] with D == Dv in {64, 128, 256},
 * GQA/MQA, causal with any kvOffset; output in the input dtype. supports() gives the reason for anything
 * else (an additive mask, float32/float64, other head dims, strided views), and dispatch falls back.
 */
import { TesseraError } from '../../errors';
import { registerKernel } from '../../registry';
import { StorageBlock } from '../../storage';
import { Tensor } from '../../tensor';
import { AttentionAttrs } from '../../ops/linalg';
import { CudaAttentionParams, CudaBinding, CudaBuffer } from './native';

type AttnAttrs = AttentionAttrs;

function params(inputs: Tensor[], at: AttnAttrs): CudaAttentionParams {
  const [q, k, v] = inputs;
  return {
    dtype: q.dtype as 'float16' | 'bfloat16',
    B: at.B, Hq: at.Hq, Hkv: at.Hkv, Sq: at.Sq, Sk: at.Sk, D: at.D, Dv: at.Dv,
    causal: at.causal, scale: at.scale, kvOffset: at.kvOffset,
    qOffset: q.offset, kOffset: k.offset, vOffset: v.offset, outOffset: 0,
  };
}

export function registerCudaAttention(cb: CudaBinding): void {
  const smCount = cb.deviceInfo().devices[0]?.smCount ?? 1;
  registerKernel({
    op: 'attention',
    backend: 'cuda',
    // mirrors resolve() in cuda/attention.cu
    variant: (inputs: Tensor[], at: AttnAttrs) => {
      const sm90 = cb.attentionUnsupported({ ...params(inputs, at), variant: 'sm90s3' }) === '';
      if (at.Sq <= 16 && at.D <= 128) {
        const mhaFillsGpu = at.Hq === at.Hkv && at.B * at.Hq >= 2 * smCount;
        if (!(sm90 && mhaFillsGpu)) return 'flash_decoding_split_kv';
      }
      if (!sm90) return 'flash_attention_mma_sm80';
      return at.D === 64 ? 'flash_attention_sm90_wgmma_3consumers' : 'flash_attention_sm90_wgmma_pingpong_3stage';
    },
    supports(inputs: Tensor[], at: AttnAttrs): true | string {
      if (at.hasMask) return 'attention_cuda: no additive mask (the cpu/js kernels take it)';
      const dt = inputs[0].dtype;
      if (dt !== 'float16' && dt !== 'bfloat16') return `attention_cuda: float16/bfloat16 only, got ${dt}`;
      if (at.outDtype !== dt) return `attention_cuda: output dtype must be ${dt}`;
      if (!inputs.slice(0, 3).every((t) => t.isContiguous())) return 'attention_cuda: q, k, v must be contiguous';
      const why = cb.attentionUnsupported(params(inputs, at));
      return why === '' ? true : `attention_cuda: ${why}`;
    },
    run(inputs: Tensor[], at: AttnAttrs) {
      const dt = inputs[0].dtype;
      const s = StorageBlock.device('cuda', dt, at.B * at.Hq * at.Sq * at.Dv, 'attention');
      try {
        const h = (t: Tensor) => t._s.handle as CudaBuffer;
        cb.attention(h(inputs[0]), h(inputs[1]), h(inputs[2]), s.handle as CudaBuffer, params(inputs, at));
      } catch (e) {
        s.release();
        const err = e as Error & { code?: string };
        throw new TesseraError(err.code === 'E_OOM' ? 'E_OOM' : 'E_NATIVE', 'attention', err.message);
      }
      return new Tensor(s, [at.B, at.Hq, at.Sq, at.Dv]);
    },
  });
}
