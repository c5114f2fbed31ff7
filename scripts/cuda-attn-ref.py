#!/usr/bin/env python3
"""Reference outputs for test/cuda-attention.test.js, computed with PyTorch on the GPU machine.

Usage: python3 scripts/cuda-attn-ref.py MANIFEST.json

MANIFEST is a JSON list of cases written by the test: {dtype, B, Hq, Hkv, Sq, Sk, D, causal, scale,
kvOffset, q, k, v, torch_out, ref_out}. q/k/v are raw little-endian float16/bfloat16 files in the SDPA layout
[B, H, S, D]. For each case this writes
  torch_out: torch.nn.functional.scaled_dot_product_attention on the same half-precision inputs (the backend
             torch picks; a causal mask aligned to the end unless Sq == Sk and kvOffset == 0), raw dtype bits;
  ref_out:   the same attention in float64 (explicit softmax(q k^T * scale + mask) v), stored as float32.
Rows that see no key are zeros in both (torch itself returns NaN there). Prints one line per case.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

DT = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def load(path, dtype, shape):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    return torch.frombuffer(data, dtype=dtype).reshape(shape).cuda()


def visible_mask(c, device):
    """[Sq, Sk] bool: query i sees key j (None when everything is visible)."""
    if not c["causal"]:
        return None
    i = torch.arange(c["Sq"], device=device).unsqueeze(1)
    j = torch.arange(c["Sk"], device=device).unsqueeze(0)
    return j <= c["kvOffset"] + i


def main():
    cases = json.load(open(sys.argv[1]))
    for c in cases:
        t0 = time.time()
        dt = DT[c["dtype"]]
        B, Hq, Hkv, Sq, Sk, D = (c[k] for k in ("B", "Hq", "Hkv", "Sq", "Sk", "D"))
        q = load(c["q"], dt, (B, Hq, Sq, D))
        k = load(c["k"], dt, (B, Hkv, Sk, D))
        v = load(c["v"], dt, (B, Hkv, Sk, D))
        vis = visible_mask(c, q.device)
        # torch under test: its own kernel choice on the half-precision inputs
        kk = k.repeat_interleave(Hq // Hkv, dim=1) if Hkv != Hq else k
        vv = v.repeat_interleave(Hq // Hkv, dim=1) if Hkv != Hq else v
        if vis is None:
            out = F.scaled_dot_product_attention(q, kk, vv, scale=c["scale"])
        elif Sq == Sk and c["kvOffset"] == 0:
            out = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, scale=c["scale"])
        else:
            out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=vis, scale=c["scale"])
        out = torch.nan_to_num(out, nan=0.0)
        out.contiguous().cpu().view(torch.int16).numpy().tofile(c["torch_out"])
        del kk, vv
        # float64 reference, one batch entry at a time (the score matrix is B-free)
        ref = torch.empty((B, Hq, Sq, D), dtype=torch.float32, device=q.device)
        g = Hq // Hkv
        for b in range(B):
            for h0 in range(0, Hq, 4):
                hs = slice(h0, min(Hq, h0 + 4))
                qb = q[b, hs].double()
                kb = k[b, [h // g for h in range(hs.start, hs.stop)]].double()
                vb = v[b, [h // g for h in range(hs.start, hs.stop)]].double()
                s = torch.matmul(qb, kb.transpose(-1, -2)) * c["scale"]
                if vis is not None:
                    s = s.masked_fill(~vis, float("-inf"))
                p = torch.softmax(s, dim=-1)
                p = torch.nan_to_num(p, nan=0.0)
                ref[b, hs] = torch.matmul(p, vb).float()
        ref.cpu().numpy().tofile(c["ref_out"])
        torch.cuda.synchronize()
        print(f"ref {c['name']}: {time.time() - t0:.2f}s", flush=True)


if __name__ == "__main__":
    main()
