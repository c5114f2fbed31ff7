#!/usr/bin/env python3
"""Builds the tokenizer fixtures that test/tokenizer.test.js checks lib/io/tokenizer.ts against.

Trains small tokenizers with Hugging Face `tokenizers` (and one with `sentencepiece`, converted through
transformers' LlamaTokenizer) on the King James Bible, then encodes and decodes a test corpus with HF and
writes the tokenizer files plus HF's ids and decoded strings. CPU only; about 30 s.

usage: python3 tokenizer_fixtures.py OUT_DIR [KJV_TEXT]
  KJV_TEXT defaults to kjv.txt beside this script (Debian's bible-kjv: `bible -l100000 gen1:1-rev22:21`).
  Writes OUT_DIR/tokenizers.tar.gz; unpack it into test/fixtures/tokenizers/.

Fixtures (one folder each, tokenizer.json + tokenizer_config.json):
  llama3    byte-level BPE, Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=false), ignore_merges,
            <|begin_of_text|> added by Sequence[ByteLevel, TemplateProcessing]
  qwen2     NFC + Split(Qwen2 regex) + ByteLevel, no bos, ChatML specials
  gpt2      ByteLevel(add_prefix_space=false, use_regex=true), <|endoftext|>, added tokens with
            lstrip / rstrip / single_word / normalized flags
  roberta   the gpt2 model with ByteLevel(add_prefix_space=true) and RobertaProcessing
  spbpe     SentencePiece-style BPE with byte_fallback, Llama-2 normalizer Sequence[Prepend, Replace]
            and decoder Sequence[Replace, ByteFallback, Fuse, Strip], <s> by TemplateProcessing
  llama2    a genuine `sentencepiece` BPE model converted by transformers (legacy=True: Metaspace always)
  llama2nl  the same with legacy=False (Metaspace prepend_scheme first)
  clip      BPE with end_of_word_suffix </w>, NFD+StripAccents+NFKC+Lowercase+Strip, WhitespaceSplit+Punctuation+Digits,
            BPEDecoder, BertProcessing
  wordpiece BPE with continuing_subword_prefix ##, Whitespace pre-tokenizer, unk, WordPiece decoder
  bert      WordPiece model, BertNormalizer, BertPreTokenizer, BertProcessing
  unigram   Unigram model, Metaspace(prepend always, split) pre-tokenizer and decoder
"""
import io
import json
import os
import random
import re
import sys
import tarfile
import tempfile
import time

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3_PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] + '<|eot_id|>' }}{% endfor %}"
)


def read_corpus(path):
    """KJV verses without their numbers, plus chapter headings: about 31k lines."""
    lines = []
    for raw in open(path, encoding="utf-8"):
        s = raw.strip()
        if s:
            lines.append(re.sub(r"^\d+ ", "", s))
    return lines


def train(tok, trainer, lines):
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return tok


def build_llama3(lines, qwen=False):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    if qwen:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PAT if qwen else LLAMA3_PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=2000, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    train(tok, trainer, lines)
    if qwen:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                  "add_bos_token": False, "chat_template": CHAT_TEMPLATE.replace("start_header_id", "im_start")}
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                          pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                          special_tokens=[("<|begin_of_text|>", bos)]),
        ])
        config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": CHAT_TEMPLATE}
    return tok, config


def build_gpt2(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    train(tok, trainer, lines)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.add_tokens([
        AddedToken("<mask>", lstrip=True, special=False, normalized=False),
        AddedToken("[NAME]", single_word=True, rstrip=True, normalized=False),
        AddedToken("Jerusalem", normalized=True),
        AddedToken("hosts", single_word=True, normalized=True),
    ])
    config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "add_bos_token": False}
    return tok, config


def build_roberta(gpt2):
    j = json.loads(gpt2.to_str())
    vocab = j["model"]["vocab"]
    extra = ["<s>", "<pad>", "</s>", "<unk>"]
    nxt = max(vocab.values()) + 1
    nxt = max(nxt, max(t["id"] for t in j["added_tokens"]) + 1)
    for s in extra:
        j["added_tokens"].append({"id": nxt, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                                  "normalized": False, "special": True})
        nxt += 1
    ids = {t["content"]: t["id"] for t in j["added_tokens"]}
    j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    j["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", ids["</s>"]], "cls": ["<s>", ids["<s>"]],
                           "trim_offsets": True, "add_prefix_space": True}
    tok = Tokenizer.from_str(json.dumps(j))
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
              "mask_token": "<mask>"}
    return tok, config


def byte_tokens():
    return ["<0x%02X>" % b for b in range(256)]


def build_spbpe(lines):
    # Train with a Metaspace pre-tokenizer so merges stay inside words (as sentencepiece's do), then
    # assemble the Llama-2 layout: <unk> <s> </s>, the 256 byte tokens, then the learned pieces.
    tr = Tokenizer(models.BPE())
    tr.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=750, show_progress=False)
    train(tr, trainer, lines)
    learned = json.loads(tr.to_str())["model"]
    vocab = {}
    for s in ["<unk>", "<s>", "</s>"] + byte_tokens():
        vocab[s] = len(vocab)
    for s, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if s not in vocab:
            vocab[s] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", 1)])
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
              "add_eos_token": False, "legacy": True}
    return tok, config


def build_llama2(lines, work, legacy):
    import sentencepiece as spm
    from transformers import LlamaTokenizer
    model_dir = os.path.join(work, "spm")
    if not os.path.exists(os.path.join(model_dir, "tokenizer.model")):
        os.makedirs(model_dir, exist_ok=True)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=os.path.join(model_dir, "tokenizer"), model_type="bpe",
            vocab_size=1000, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, character_coverage=0.9995,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    hf = LlamaTokenizer.from_pretrained(model_dir, legacy=legacy, add_bos_token=True, add_eos_token=False)
    save = os.path.join(work, "llama2_%s" % legacy)
    hf.save_pretrained(save)
    tok = Tokenizer.from_file(os.path.join(save, "tokenizer.json"))
    config = json.load(open(os.path.join(save, "tokenizer_config.json")))
    config.pop("is_local", None)
    config.pop("local_files_only", None)
    config.update({"add_bos_token": True, "add_eos_token": False, "legacy": legacy})
    return tok, config


def build_clip(lines):
    tok = Tokenizer(models.BPE(unk_token="<|unk|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.NFKC(),
                                           normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False, end_of_word_suffix="</w>",
                                  special_tokens=["<|unk|>", "<|startoftext|>", "<|endoftext|>"])
    train(tok, trainer, lines)
    tok.post_processor = processors.BertProcessing(("<|endoftext|>", 2), ("<|startoftext|>", 1))
    config = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|unk|>"}
    return tok, config


def build_wordpiece(lines):
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False, continuing_subword_prefix="##",
                                  special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])
    train(tok, trainer, lines)
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    config = {"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]",
              "mask_token": "[MASK]"}
    return tok, config


def build_bert(lines):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=40))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(vocab_size=1500, show_progress=False,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    train(tok, trainer, lines)
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    config = {"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]",
              "mask_token": "[MASK]", "do_lower_case": True}
    return tok, config


def build_unigram(lines):
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=1000, show_progress=False, unk_token="<unk>",
                                      special_tokens=["<unk>", "<s>", "</s>"], max_piece_length=12)
    train(tok, trainer, lines[:8000])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B:1 </s>:1",
                                                       special_tokens=[("</s>", 2)])
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    return tok, config


def test_texts(lines):
    rng = random.Random(5)
    verses = rng.sample(lines, 150)
    raw = []
    for v in rng.sample(range(len(lines)), 10):
        raw.append("  %d %s" % (v % 50 + 1, lines[v]))
    chapter = "\n".join(lines[100:140])
    hand = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "a", "A", "I", "!",
        "Hello world", " Hello world", "Hello  world", "Hello world ", "hello\tworld\n", "hello\n\nworld",
        "It's", "it's I'm you're we've they'll he'd", "IT'S SHE'S YOU'RE WE'VE THEY'LL HE'D I'M",
        "don't can't won't", "'s 't 're 've 'm 'll 'd", "''s quoted 'word' \"double\"", "rock'n'roll",
        "It\u2019s curly", "caf\u00e9", "cafe\u0301", "na\u00efve r\u00e9sum\u00e9 fa\u00e7ade", "\u00dcn\u00efc\u00f6d\u00e9 \u00c5ngstr\u00f6m",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u05e9\u05dc\u05d5\u05dd",
        "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35", "\u1f08\u03c1\u03c7\u1fc7 \u1f26\u03bd \u1f41 \u03bb\u03cc\u03b3\u03bf\u03c2",
        "\U0001f600\U0001f603\U0001f389 emoji \U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "flags \U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5 keycap 1\ufe0f\u20e3", "\U0001d573\U0001d58a\U0001d586 math \u2211\u222b\u221a\u221e",
        "12345 67890 3.14159 1,000,000", "0 00 000 0000 00000 1234567", "\u0661\u0662\u0663 arabic digits", "\u00b2\u00b3 \u00bd \u2167 \u2460",
        "a  b   c    d     e", "trailing spaces   ", "   leading spaces", "tab\t\tseparated\tvalues",
        "\r\n windows\r\nlines\r\n", "line1\nline2\n\nline4\n", " \t \n \t ", "word\n   indented\n\tTab",
        "a" * 300, "ab" * 200, "supercalifragilisticexpialidocious" * 5, "x" + "\u0301" * 20,
        "https://example.com/path?q=1&x=y#frag", "user@example.org", "def f(x):\n    return x**2 + 1\n",
        "if (a != b) { c[i] = d->e; } // comment", "!!!???...,,,;;;:::---___", "$100 \u20ac50 \u00a330 \u00a5",
        "<|begin_of_text|>In the beginning", "text <|end_of_text|> more text", "<|begin_of_text|><|begin_of_text|>",
        "<|begin_of", "<|eot_id|>\n", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<s>Hello</s>", "<s> Hello </s>", "<unk>", "a<s>b</s>c", "</s></s>", "<s>", " <s>",
        "<|endoftext|>", "The end.<|endoftext|>The start.", "[CLS] text [SEP]", "[UNK][MASK]",
        "a <mask> b", "a<mask>b", "a   <mask>   b", "<mask>", " <mask>", "[NAME] went", "x[NAME]y", "Hi [NAME]  ok",
        "Jerusalem", "toJerusalem", "the LORD of hosts", "hostsmen", "hosts,", "JERUSALEM",
        "\u017f long s 's '\u017f", "\u212a Kelvin 'K '\u212a", "\u00a0nbsp\u00a0", "\u3000ideographic\u3000space",
        "zero\u200bwidth", "line\u2028sep", "nel\x85char", "\ufeffBOM", "nul\x00ctl\x01\x1f\x7f", "\u00ff\u00fe\u00fd",
        "\u2581already metaspace\u2581", "\u0120G with dot \u010a", "\ufffd replacement", "MiXeD CaSe WoRdS",
        "tHe LoRd", "AND GOD SAID, LET THERE BE LIGHT: AND THERE WAS LIGHT.",
        chapter,
    ]
    fuzz_pool = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3 +
                 list("    \t\n\r.,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`") +
                 ["\u00e9", "\u00fc", "\u0301", "\u4e2d", "\u6587", "\U0001f600", "\u2581", "\u00a0", "\u2019", "'s", "'S",
                  "<s>", "</s>", "<mask>", "<|endoftext|>", "<|begin_of_text|>", "\u017f", "\u0131", "\u0130", "\u00df"])
    fuzz = []
    for _ in range(120):
        n = rng.randint(0, 40)
        fuzz.append("".join(rng.choice(fuzz_pool) for _ in range(n)))
    return hand + verses + raw + fuzz


def encode_all(tok, texts, vocab_size):
    rng = random.Random(11)
    # How many special ids the post-processor puts before / after the text.
    probe, probe_plain = tok.encode("a").ids, tok.encode("a", add_special_tokens=False).ids
    before = next(k for k in range(len(probe)) if probe[k:k + len(probe_plain)] == probe_plain)
    after = len(probe) - len(probe_plain) - before
    out = {"n_before": before, "n_after": after, "ids": [], "ids_plain": [], "decoded": [], "decoded_skip": []}
    for t in texts:
        # null in ids_plain / decoded_skip = ids without the specials / same as decoded (keeps the file small)
        ids = tok.encode(t).ids
        plain = tok.encode(t, add_special_tokens=False).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        dec_skip = tok.decode(ids, skip_special_tokens=True)
        out["ids"].append(ids)
        out["ids_plain"].append(None if plain == ids[before:len(ids) - after] else plain)
        out["decoded"].append(dec)
        out["decoded_skip"].append(None if dec_skip == dec else dec_skip)
    # Decoding arbitrary id runs: partial UTF-8 sequences, stray byte tokens, specials in the middle.
    runs = []
    for _ in range(60):
        runs.append([rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))])
    out["decode_runs"] = runs
    out["decode_runs_out"] = [tok.decode(r, skip_special_tokens=False) for r in runs]
    out["decode_runs_skip"] = [tok.decode(r, skip_special_tokens=True) for r in runs]
    return out


def main():
    out_dir = sys.argv[1]
    kjv = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "kjv.txt")
    lines = read_corpus(kjv)
    texts = test_texts(lines)
    work = tempfile.mkdtemp()
    t0 = time.time()
    built = {}
    built["llama3"] = build_llama3(lines)
    built["qwen2"] = build_llama3(lines, qwen=True)
    built["gpt2"] = build_gpt2(lines)
    built["roberta"] = build_roberta(built["gpt2"][0])
    built["spbpe"] = build_spbpe(lines)
    built["llama2"] = build_llama2(lines, work, True)
    built["llama2nl"] = build_llama2(lines, work, False)
    built["clip"] = build_clip(lines)
    built["wordpiece"] = build_wordpiece(lines)
    built["bert"] = build_bert(lines)
    built["unigram"] = build_unigram(lines)
    print("trained in %.1f s" % (time.time() - t0), flush=True)

    cases = {"hf_tokenizers": tokenizers.__version__, "texts": texts, "tokenizers": {}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
        for name, (tok, config) in built.items():
            t1 = time.time()
            size = tok.get_vocab_size(with_added_tokens=True)
            cases["tokenizers"][name] = encode_all(tok, texts, size)
            add("%s/tokenizer.json" % name, tok.to_str(pretty=False).encode("utf-8"))
            add("%s/tokenizer_config.json" % name, json.dumps(config, indent=1, ensure_ascii=False).encode("utf-8"))
            print("%-10s vocab %5d  encoded %d texts in %.2f s" % (name, size, len(texts), time.time() - t1), flush=True)
        add("cases.json", json.dumps(cases, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizers.tar.gz"), "wb") as f:
        f.write(buf.getvalue())
    print("wrote %s (%d bytes), %d texts x %d tokenizers" % (os.path.join(out_dir, "tokenizers.tar.gz"),
                                                              len(buf.getvalue()), len(texts), len(built)))


if __name__ == "__main__":
    main()
