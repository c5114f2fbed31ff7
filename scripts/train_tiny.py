#!/usr/bin/env python3
"""
Trains models/tiny-kjv, the small Llama-architecture model shipped with tessera, and writes the
Hugging Face fixtures that test/model.test.js checks the Node implementation against.

  python3 train_tiny.py OUT [--data kjv.txt] [--seconds 210] [--device cuda]

How the shipped model was made (device budget: one call, ~4 minutes):
  apt-get install bible-kjv bible-kjv-text && bible -l10000 "gen1:1-rev22:21" > /tmp/kjv_raw.txt
  python3 scripts/train_tiny.py .carry --prepare /tmp/kjv_raw.txt   # -> .carry/kjv.txt (.carry is git-ignored)
  cp scripts/train_tiny.py .carry/   # then on the GPU machine, carrying .carry:
  cd .carry && PYTHONUNBUFFERED=1 python3 train_tiny.py $OUT
  and OUT/tiny-kjv.tar.gz, OUT/fixtures.tar.gz unpacked into models/tiny-kjv and test/fixtures/tiny-kjv.

Data: the King James Bible (public domain; Debian's bible-kjv-text, dumped one verse a line, chapters
separated by a blank line). Tokenizer: byte-level BPE, 2048 entries, trained with HF tokenizers; ids
0/1/2 are <unk>/<s>/</s> and encode() prepends <s>. Model: LlamaForCausalLM, hidden 192, 4 layers,
4 query heads sharing 2 kv heads (GQA), SwiGLU 512, tied embeddings, ~2M parameters, float32.
Training: random 256-token windows that start at a verse, each prefixed with <s>; a chapter ends with
</s>. AdamW, bf16 autocast, warmup then cosine decay over a wall-clock budget (--seconds). On an H100 the
default run (--seconds 210, as shipped) makes ~11k steps, ~330 passes over the 1.1M training tokens: the
model memorises much of the text (train loss 0.16, held-out chapters 9.6 nats/token), which suits a demo of
recognisable KJV prose; a much shorter budget gives a model that generalises better and writes blander text.

Fixtures (computed on the CPU in float32, so no TF32 rounding): token ids of a few prompts, full logits
of two prompts (also for the weights rounded to bf16, still computed in float32), greedy continuations
of 32 tokens from model.generate(do_sample=False) with the top-1/top-2 logit gap of each step, and two
tiny random-weight models covering what the KJV model does not: Qwen2 (q/k/v biases, untied lm_head)
and Llama with llama3 rope scaling, an explicit head_dim and one kv head (MQA).

OUT receives three files: tiny-kjv.tar.gz (the model directory), fixtures.tar.gz, train.log.
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import tarfile
import time

try:
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                              Qwen2Config, Qwen2ForCausalLM)
except ImportError:  # --prepare needs none of them
    if "--prepare" not in sys.argv:
        raise

PROMPTS = [
    "In the beginning",
    "And God said",
    "The LORD is my shepherd",
    "Blessed are the",
    "And it came to pass",
    "For God so loved the world",
]
VOCAB = 2048
SEQ = 256


def log(*a):
    print(*a, flush=True)


def prepare(raw, out_dir):
    """The `bible` program's dump (chapter headings, indented numbered verses) -> kjv.txt."""
    import re
    chapters, cur = [], None
    for line in open(raw, encoding="utf-8"):
        m = re.match(r"^\s+\d+ (.*)$", line.rstrip("\n"))
        if m:
            cur.append(m.group(1).strip())
        elif line.strip():
            cur = []
            chapters.append(cur)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "kjv.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(c) for c in chapters) + "\n")
    print(f"{len(chapters)} chapters, {sum(len(c) for c in chapters)} verses -> {out_dir}/kjv.txt")


def train_tokenizer(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    assert tok.token_to_id("<s>") == 1 and tok.token_to_id("</s>") == 2
    return tok


def build_stream(tok, chapters):
    """Token stream of all chapters (each line ends in \\n, each chapter in </s>) and verse start offsets."""
    ids, starts = [], []
    for ch in chapters:
        lines = [l + "\n" for l in ch.split("\n") if l]
        for enc in tok.encode_batch(lines, add_special_tokens=False):
            starts.append(len(ids))
            ids.extend(enc.ids)
        ids.append(2)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.long)


def batches(stream, starts, bsz, gen):
    n = len(stream)
    ok = starts[starts + SEQ < n]
    while True:
        pick = ok[torch.randint(len(ok), (bsz,), generator=gen)]
        idx = pick[:, None] + torch.arange(SEQ - 1)[None, :]
        body = stream[idx]
        yield torch.cat([torch.ones(bsz, 1, dtype=torch.long), body], dim=1)


def eval_loss(model, stream, starts, device, n=32):
    gen = torch.Generator().manual_seed(1234)
    x = next(batches(stream, starts, n, gen)).to(device)
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        return model(input_ids=x, labels=x).loss.item()


def train(model, stream, starts, val, val_starts, device, seconds, bsz):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    it = batches(stream, starts, bsz, gen)
    t0 = time.time()
    step, warm, peak = 0, 200, 3e-3
    ema = None
    while True:
        frac = (time.time() - t0) / seconds
        if frac >= 1:
            break
        lr = peak * min(1, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x = next(it).to(device, non_blocking=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 200 == 0 or step == 1:
            l = loss.item()
            ema = l if ema is None else 0.9 * ema + 0.1 * l
            log(f"step {step} t={time.time() - t0:.0f}s lr={lr:.2e} loss={l:.3f}")
    model.eval()
    tr, va = eval_loss(model, stream, starts, device), eval_loss(model, val, val_starts, device)
    log(f"done: {step} steps x {bsz}x{SEQ} tokens in {time.time() - t0:.0f}s; train loss {tr:.3f}, held-out loss {va:.3f}")
    return {"steps": step, "batch": bsz, "seq": SEQ, "train_loss": tr, "val_loss": va, "seconds": time.time() - t0}


def greedy(model, ids, n=32):
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=0)
    new = out.sequences[0, len(ids):].tolist()
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    return new, gaps


def tiny_random(kind, path):
    """A tiny random model for architecture coverage; returns (model, config)."""
    torch.manual_seed(7 if kind == "qwen2" else 8)
    if kind == "qwen2":
        cfg = Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                          initializer_range=0.1)
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": 1000000.0}
        m = Qwen2ForCausalLM(cfg)
    else:
        cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=1, head_dim=32, max_position_embeddings=256,
                          rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=[2, 3],
                          initializer_range=0.1)
        cfg.rope_parameters = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 4.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
        m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.3)
            elif "norm" in n:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    m.eval()
    m.save_pretrained(path, safe_serialization=True)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "kjv.txt"))
    ap.add_argument("--seconds", type=float, default=210)
    ap.add_argument("--device", default=None, help="cuda when available, else cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--prepare", metavar="RAW", help="only turn the bible program's dump RAW into OUT/kjv.txt")
    args = ap.parse_args()
    if args.prepare:
        return prepare(args.prepare, args.out)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = os.path.abspath(args.out)
    work = os.path.join(out, "work")
    mdir, fdir = os.path.join(work, "tiny-kjv"), os.path.join(work, "fixtures")
    os.makedirs(mdir, exist_ok=True)
    os.makedirs(fdir, exist_ok=True)
    logf = open(os.path.join(out, "train.log"), "w")
    global log

    def log(*a):  # noqa: F811 (tee to train.log)
        s = " ".join(str(v) for v in a)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    log(f"torch {torch.__version__} device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    torch.manual_seed(0)
    random.seed(0)
    text = open(args.data, encoding="utf-8").read()
    chapters = [c for c in text.split("\n\n") if c.strip()]
    random.Random(0).shuffle(order := list(range(len(chapters))))
    held = set(order[:24])  # 24 chapters held out for the validation loss
    train_ch = [c for i, c in enumerate(chapters) if i not in held]
    val_ch = [c for i, c in enumerate(chapters) if i in held]

    t0 = time.time()
    tok = train_tokenizer(l for c in train_ch for l in c.split("\n"))
    log(f"tokenizer: {tok.get_vocab_size()} entries in {time.time() - t0:.1f}s")
    stream, starts = build_stream(tok, train_ch)
    val, val_starts = build_stream(tok, val_ch)
    log(f"tokens: train {len(stream)}, held-out {len(val)} ({len(text) / (len(stream) + len(val)):.2f} chars/token)")

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                      initializer_range=0.02)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    model = LlamaForCausalLM(cfg).to(args.device)
    nparam = sum(p.numel() for p in model.parameters())
    log(f"model: {nparam} parameters")
    stats = train(model, stream, starts, val, val_starts, args.device, args.seconds, args.batch)
    stats["parameters"] = nparam

    model = model.float().cpu().eval()
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, do_sample=True, temperature=0.8,
                                               top_k=40, top_p=0.95, max_new_tokens=64)
    model.save_pretrained(mdir, safe_serialization=True)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    hf_tok.save_pretrained(mdir)
    with open(os.path.join(mdir, "README.md"), "w") as f:
        f.write("# tiny-kjv\n\nA ~2M-parameter Llama-architecture model (hidden 192, 4 layers, 4 heads, 2 kv heads, "
                f"vocab {VOCAB} byte-level BPE) trained for {stats['seconds']:.0f} s on the King James Bible "
                f"(public domain) by scripts/train_tiny.py. Training loss {stats['train_loss']:.3f}, held-out loss "
                f"{stats['val_loss']:.3f} nats/token. A toy for tessera's inference path: it continues text in "
                "the style of the KJV and knows nothing else.\n")

    # ---- fixtures (CPU, float32)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    fx = {"prompts": [], "train": stats, "config": cfg.to_dict()}
    tensors = {}
    bf = LlamaForCausalLM.from_pretrained(mdir, dtype=torch.float32).eval()
    with torch.no_grad():
        for p in bf.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    for i, p in enumerate(PROMPTS):
        ids = hf_tok(p)["input_ids"]
        ids_plain = hf_tok(p, add_special_tokens=False)["input_ids"]
        new, gaps = greedy(model, ids)
        entry = {"text": p, "ids": ids, "ids_no_special": ids_plain, "greedy_ids": new,
                 "greedy_text": hf_tok.decode(new), "greedy_gaps": gaps}
        log(f"{p!r} -> {entry['greedy_text']!r} (min gap {min(gaps):.3f})")
        if i < 2:
            x = torch.tensor([ids + new[:8]])  # prompt + 8 generated tokens, <= 16
            with torch.no_grad():
                tensors[f"logits_{i}"] = model(input_ids=x).logits.float().contiguous()
                tensors[f"logits_bf16w_{i}"] = bf(input_ids=x).logits.float().contiguous()
            entry["logits_ids"] = x[0].tolist()
        fx["prompts"].append(entry)
    fx["decode_check"] = {"text": "\u00e9t\u00e9 \u2014 caf\u00e9 \U0001F600 Jerusalem",
                          "ids": hf_tok("\u00e9t\u00e9 \u2014 caf\u00e9 \U0001F600 Jerusalem", add_special_tokens=False)["input_ids"]}
    for kind in ("qwen2", "llama3rope"):
        path = os.path.join(fdir, f"random-{kind}")
        m = tiny_random(kind, path)
        g = torch.Generator().manual_seed(3)
        x = torch.randint(3, 512, (1, 40), generator=g)
        with torch.no_grad():
            tensors[f"random_{kind}_logits"] = m(input_ids=x).logits.float().contiguous()
        fx[f"random_{kind}_ids"] = x[0].tolist()
        fx[f"random_{kind}_greedy"] = greedy(m, x[0].tolist()[:8], 16)[0]
    save_file(tensors, os.path.join(fdir, "hf_logits.safetensors"))
    with open(os.path.join(fdir, "hf.json"), "w") as f:
        json.dump(fx, f, indent=1)
    import transformers
    log(f"transformers {transformers.__version__}; wrote {sorted(os.listdir(mdir))} and {sorted(os.listdir(fdir))}")

    for name, d in (("tiny-kjv", mdir), ("fixtures", fdir)):
        with tarfile.open(os.path.join(out, f"{name}.tar.gz"), "w:gz") as t:
            t.add(d, arcname=".")
    shutil.rmtree(work)
    log(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
