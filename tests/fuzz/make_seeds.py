#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ from tests/data.

Real files where they are small (configs, the golden tokenizer.json, one golden GGUF);
otherwise small files cut down from real ones (safetensors headers with tiny shapes,
tokenizer.json with a few hundred vocab entries) and hand-made files that reach every
dtype and value type. Deterministic; rerun after changing tests/data:
  .venv/bin/python3 tests/fuzz/make_seeds.py
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests/data"
OUT = ROOT / "tests/fuzz/corpus"


def out(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# ---- GGUF -------------------------------------------------------------------------------
def gstr(s):
    s = s.encode()
    return struct.pack("<Q", len(s)) + s


def gguf(kvs, tensors, alignment=32):
    """kvs: [(key, type id, encoded value)]; tensors: [(name, ne innermost first, ggml type, data)]."""
    meta = b"".join(gstr(k) + struct.pack("<I", t) + v for k, t, v in kvs)
    infos, blob = b"", b""
    for name, ne, typ, data in tensors:
        blob += b"\0" * (-len(blob) % alignment)
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", typ, len(blob))
        blob += data
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + meta + infos
    return head + b"\0" * (-len(head) % alignment) + blob


def arr(elem_type, items):
    return struct.pack("<IQ", elem_type, len(items)) + b"".join(items)


def make_gguf():
    shutil.copy(DATA / "golden/llama/model-q4_1.gguf", OUT / "gguf/golden-llama-q4_1.gguf")
    u32 = lambda v: struct.pack("<I", v)
    f32 = lambda v: struct.pack("<f", v)
    kvs = [
        ("general.architecture", 8, gstr("llama")),
        ("general.alignment", 4, u32(32)),
        ("llama.block_count", 4, u32(1)),
        ("llama.embedding_length", 4, u32(32)),
        ("llama.attention.head_count", 4, u32(4)),
        ("llama.attention.head_count_kv", 4, u32(2)),
        ("llama.feed_forward_length", 4, u32(64)),
        ("llama.context_length", 4, u32(128)),
        ("llama.rope.freq_base", 6, f32(500000.0)),
        ("llama.rope.scaling.type", 8, gstr("linear")),
        ("llama.rope.scaling.factor", 6, f32(2.0)),
        ("llama.attention.layer_norm_rms_epsilon", 6, f32(1e-5)),
        ("llama.expert_count", 4, u32(0)),
        ("llama.expert_weights_norm", 7, b"\1"),
        ("v.u8", 0, b"\7"), ("v.i8", 1, b"\xff"), ("v.u16", 2, b"\1\2"), ("v.i16", 3, b"\xfe\xff"),
        ("v.i32", 5, struct.pack("<i", -3)), ("v.u64", 10, struct.pack("<Q", 2**63 + 1)),
        ("v.i64", 11, struct.pack("<q", -(2**40))), ("v.f64", 12, struct.pack("<d", 0.5)),
        ("tokenizer.ggml.model", 8, gstr("gpt2")),
        ("tokenizer.ggml.tokens", 9, arr(8, [gstr(t) for t in ["a", "b", "ab", "<s>"]])),
        ("tokenizer.ggml.token_type", 9, arr(5, [struct.pack("<i", t) for t in [1, 1, 1, 3]])),
        ("tokenizer.ggml.scores", 9, arr(6, [f32(-i) for i in range(4)])),
        ("v.nested", 9, arr(9, [arr(0, [b"\1", b"\2"]), arr(0, [])])),
    ]
    # One tensor of each type we read, one row (or block) each; ggml type ids from ggml.h.
    types = [(0, 1, 4), (1, 1, 2), (30, 1, 2), (2, 32, 18), (3, 32, 20), (6, 32, 22),
             (8, 32, 34), (12, 256, 144), (14, 256, 210)]
    tensors = []
    for i, (typ, block, nbytes) in enumerate(types):
        n = block if block > 1 else 8
        data = bytes((i * 37 + k * 11) % 251 for k in range((n // block) * nbytes * 2))
        tensors.append((f"blk.0.t{typ}.weight", [n, 2], typ, data))
    tensors.append(("output_norm.weight", [32], 0, struct.pack("<32f", *([1.0] * 32))))
    out("gguf", "all-types.gguf", gguf(kvs, tensors))
    out("gguf", "vocab-only.gguf", gguf(kvs[:1] + kvs[-5:-1], []))
    out("gguf", "aligned-64.gguf", gguf([("general.alignment", 4, u32(64))],
                                        [("a", [4], 0, b"\0" * 16), ("b", [2, 2], 1, b"\0" * 8)], 64))


# ---- safetensors ------------------------------------------------------------------------
def safetensors(entries, metadata=None):
    """entries: [(name, dtype, shape)]; data is filled with a byte pattern."""
    size = {"F32": 4, "F16": 2, "BF16": 2}
    header, off = {}, 0
    for name, dtype, shape in entries:
        n = size[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + bytes(i * 7 % 256 for i in range(off))


def make_safetensors():
    real = (DATA / "golden/llama/model.safetensors").read_bytes()
    (n,) = struct.unpack_from("<Q", real)
    header = json.loads(real[8 : 8 + n])
    entries = [(k, v["dtype"], [min(d, 4) for d in v["shape"]])
               for k, v in sorted(header.items(), key=lambda kv: kv[0]) if k != "__metadata__"]
    out("safetensors", "golden-llama-small.safetensors",
        safetensors(entries, header.get("__metadata__", {"format": "pt"})))
    out("safetensors", "dtypes.safetensors",
        safetensors([("a", "F32", [2, 3]), ("b", "F16", [4]), ("c", "BF16", [1, 2, 2]),
                     ("scalar", "F32", []), ("empty", "F16", [0, 4])], {"format": "pt"}))
    out("safetensors", "empty.safetensors", safetensors([]))


# ---- config.json / generation_config.json ----------------------------------------------
def make_config():
    for arch in ["llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3_moe"]:
        shutil.copy(DATA / f"golden/{arch}/config.json", OUT / f"config/{arch}-config.json")
    cfg = json.loads((DATA / "golden/llama/config.json").read_text())
    cfg.pop("rope_parameters")
    cfg["rope_theta"] = 500000.0
    cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    cfg["sliding_window"] = 4096
    cfg["use_sliding_window"] = True
    out("config", "llama3-rope-scaling.json", json.dumps(cfg, indent=1))
    out("config", "generation_config.json", json.dumps({
        "bos_token_id": 1, "eos_token_id": [2, 32000], "do_sample": True, "temperature": 0.6,
        "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "max_new_tokens": 256}, indent=1))


# ---- tokenizer.json ---------------------------------------------------------------------
def trim_tokenizer(j, keep):
    """Keeps vocab ids < keep (and the added tokens) and the merges they can express."""
    vocab = {t: i for t, i in j["model"]["vocab"].items() if i < keep}
    merges = []
    for m in j["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = merges
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def make_tokenizer():
    shutil.copy(DATA / "golden/llama/tokenizer.json", OUT / "tokenizer/golden.json")
    for name, keep in [("llama3", 600), ("qwen3", 600), ("llama2", 600)]:
        j = json.loads((DATA / f"tokenizers/{name}/tokenizer.json").read_text())
        j["added_tokens"] = j["added_tokens"][:8]
        out("tokenizer", f"{name}-trimmed.json", trim_tokenizer(j, keep))
    # Every supported component at least once, in Sequences.
    base = json.loads((DATA / "golden/llama/tokenizer.json").read_text())
    base["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Strip", "strip_left": True, "strip_right": False},
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    base["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithNext",
         "invert": False},
        {"type": "Digits", "individual_digits": True}, {"type": "Punctuation",
                                                        "behavior": "Contiguous"},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
        {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False}]}
    base["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ",
                                                     "start": 1, "stop": 0},
        {"type": "ByteLevel"}]}
    base["added_tokens"] = [
        {"id": 256, "content": "<s>", "special": True, "lstrip": False, "rstrip": False,
         "single_word": False, "normalized": False},
        {"id": 257, "content": "</s>", "special": True},
        {"id": 258, "content": " hello", "special": False, "lstrip": True, "rstrip": True}]
    base["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel"},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
         "special_tokens": {"<s>": {"id": "<s>", "ids": [256], "tokens": ["<s>"]},
                            "</s>": {"id": "</s>", "ids": [257], "tokens": ["</s>"]}}}]}
    base["model"]["byte_fallback"] = True
    base["model"]["fuse_unk"] = True
    base["model"]["ignore_merges"] = True
    base["model"]["merges"] = [list(m.split(" ", 1)) if isinstance(m, str) else m
                               for m in base["model"]["merges"]]
    out("tokenizer", "all-components.json", json.dumps(base, ensure_ascii=False))
    wp = dict(base, model={"type": "WordPiece", "vocab": {"a": 0}})
    out("tokenizer", "wordpiece.json", json.dumps(wp))


# ---- chat templates ---------------------------------------------------------------------
def make_chat():
    msgs = ["system", "Be brief.", "user", "Hi there!", "assistant", " Hello. ", "user", "2+2?"]
    for name in ["llama3", "qwen3"]:
        cfg = json.loads((DATA / f"tokenizers/{name}/tokenizer_config.json").read_text())
        out("chat_template", name, b"\x03" + "\0".join([cfg["chat_template"]] + msgs).encode())
    smol = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by "
            "Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' "
            "+ message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
            "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    out("chat_template", "smollm2", b"\x01" + "\0".join([smol] + msgs[2:]).encode())
    out("chat_template", "no-template", b"\x06" + "\0".join([""] + msgs).encode())
    # The published templates the Jinja conformance test renders.
    for name in ["gemma3", "llama31", "mistral", "deepseek_v3"]:
        text = (DATA / f"chat_templates/{name}.jinja").read_text()
        out("chat_template", name, b"\x03" + "\0".join([text] + msgs).encode())
    out("chat_template", "real-newline",
        b"\x05" + "\0".join(["<|im_start|>system\nYou are Qwen.<|im_end|>\n"] + msgs[2:4]).encode())


# ---- step plans (runtime/serving/step_plan.h) ----------------------------------------
def plan(step, gen, ops, seqs, tokens, stop=False):
    body = struct.pack("<III", len(ops), len(seqs), len(tokens))
    for kind, seq, parent, count, blocks in ops:
        body += struct.pack("<B3xIqqq", kind, len(blocks), seq, parent, count)
        body += struct.pack(f"<{len(blocks)}i", *blocks)
    for seq, first, n, flags, temp, top_k, top_p, min_p, rep, seed in seqs:
        body += struct.pack("<qiiB3xfifffQ", seq, first, n, flags, temp, top_k,
                            top_p, min_p, rep, seed)
    body += struct.pack(f"<{len(tokens)}i", *tokens)
    head = struct.pack("<IHHIIQQ", 0x4C505354, 1, 1 if stop else 0, len(body), 0, step, gen)
    return head + body


def make_step_plan():
    greedy = (0.0, 0, 1.0, 0.0, 1.0, 0)
    out("step_plan", "prefill", plan(1, 0, [(1, 7, 0, 0, [0, 1, 2])],
                                     [(7, 0, 40, 1, *greedy)], list(range(100, 140))))
    out("step_plan", "decode-and-prefill-chunk", plan(
        9, 8, [(1, 3, 0, 0, [5]), (2, 4, 0, 0, []), (3, 6, 0, 0, [])],
        [(3, 16, 1, 1, *greedy), (5, 32, 8, 2, 0.8, 40, 0.95, 0.05, 1.1, 1234567)],
        [11] + list(range(200, 208))))
    out("step_plan", "fork", plan(4, 3, [(4, 9, 7, 2, [])], [], []))
    out("step_plan", "stop", plan(12, 11, [], [], [], stop=True))
    out("step_plan", "empty", plan(0, 0, [], [], []))


if __name__ == "__main__":
    for t in ["gguf", "safetensors", "config", "tokenizer", "chat_template", "step_plan"]:
        shutil.rmtree(OUT / t, ignore_errors=True)
        (OUT / t).mkdir(parents=True)
    make_gguf()
    make_safetensors()
    make_config()
    make_tokenizer()
    make_chat()
    make_step_plan()
