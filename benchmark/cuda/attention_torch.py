#!/usr/bin/env python3
"""PyTorch side of benchmark/cuda/attention.js: times torch SDPA on the same shapes in the same run.

Usage: python3 benchmark/cuda/attention_torch.py SHAPES.json OUT.json

SHAPES.json: a list of {name, B, Hq, Hkv, Sq, Sk, D, causal, decode}. For each shape and each backend in
(FLASH_ATTENTION, CUDNN_ATTENTION, and for decode shapes also EFFICIENT_ATTENTION and torch's default choice)
it times scaled_dot_product_attention (bf16, random inputs) under torch.nn.attention.sdpa_kernel with CUDA
events around each call: warm-up, then the median of `iters` calls. GQA goes through enable_gqa=True.
A backend that refuses a shape is recorded with its error. Also measures the two ceilings of the roofline:
a device-to-device copy (bytes read + written) and a bf16 8192^3 matmul.
"""
import json
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, iters, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for s, e in evs:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in evs)


def ceilings():
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = time_ms(lambda: y.copy_(x), 20)
    copy_tbs = 2 * x.numel() / (ms * 1e-3) / 1e12
    del x, y
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    ms = time_ms(lambda: a @ b, 20)
    return {"copy_TBps": copy_tbs, "matmul_bf16_TFLOPs": 2 * 8192**3 / (ms * 1e-3) / 1e12}


def main():
    shapes = json.load(open(sys.argv[1]))
    torch.manual_seed(0)
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "ceilings": ceilings(), "shapes": []}
    for sh in shapes:
        B, Hq, Hkv, Sq, Sk, D = (sh[k] for k in ("B", "Hq", "Hkv", "Sq", "Sk", "D"))
        q = torch.randn(B, Hq, Sq, D, dtype=torch.bfloat16, device="cuda")
        k = torch.randn(B, Hkv, Sk, D, dtype=torch.bfloat16, device="cuda")
        v = torch.randn(B, Hkv, Sk, D, dtype=torch.bfloat16, device="cuda")
        # torch's is_causal is aligned top-left; with Sq == Sk that is our (end-aligned) mask. For decode
        # (Sq << Sk) the causal mask changes almost nothing in cost, so decode is timed without it.
        causal = sh["causal"] and Sq == Sk
        backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]
        if sh.get("decode"):
            backends += [("efficient", SDPBackend.EFFICIENT_ATTENTION), ("default", None)]
        row = {"name": sh["name"], "times_ms": {}, "errors": {}}
        for name, be in backends:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=Hq != Hkv)
            try:
                if be is None:
                    row["times_ms"][name] = time_ms(fn, sh.get("iters", 30))
                else:
                    with sdpa_kernel([be]):
                        row["times_ms"][name] = time_ms(fn, sh.get("iters", 30))
            except Exception as e:  # a backend that does not take this shape
                row["errors"][name] = str(e).splitlines()[0][:200]
        res["shapes"].append(row)
        print(f"torch {sh['name']}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in row["times_ms"].items()), flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    json.dump(res, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
