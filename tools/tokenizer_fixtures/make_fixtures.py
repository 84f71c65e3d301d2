#!/usr/bin/env python3
"""Writes tests/data/tokenizer_fixtures/<name>.json: reference encodings of a corpus of
tricky strings, made by the Python `tokenizers` library (for the tokenizer.json folders in
tests/data/tokenizers) and by `transformers` loading the tokenizer out of a GGUF file
(SmolLM2). tests/tokenizer/fixture_test.cc checks Tessera against them.

Each fixture holds, per text:
  ids          encode(text, add_special_tokens=False)   special tokens in the text parsed
  ids_special  encode(text, add_special_tokens=True)    + BOS/EOS from the post-processor
  ids_raw      add_special_tokens=False, special tokens in the text NOT parsed
               (tokenizers: encode_special_tokens=True; transformers: split_special_tokens)

Usage (from the repository root):
  deploy/setup.sh --fixtures   # requirements/fixtures.txt into .venv
  .venv/bin/python3 tools/tokenizer_fixtures/make_fixtures.py [--models ~/.cache/tessera/models]
"""
import argparse
import json
import os
import sys

# Tricky cases: whitespace runs, code, numbers, emoji (ZWJ sequences, modifiers), CJK,
# RTL scripts, combining marks and non-NFC input, contractions, special-token text typed by
# a user, and degenerate inputs. Keep it short: fixtures are committed.
CORPUS = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    "\r\n",
    " \n \n",
    "Hello world",
    " Hello world",
    "Hello World!",
    "HELLO WORLD, THIS IS LOUD",
    "ThIs Is CaPiTaLiZaTiOn",
    "trailing space ",
    "   leading spaces",
    "multiple   spaces    between     words",
    "tabs\tand\t\ttabs\nnewlines\n\n\nand\r\ncarriage returns",
    "                    twenty spaces",
    "def square(x):\n    return x ** 2  # square it\n",
    'int main() {\n\tprintf("%d\\n", 42);\n\treturn 0;\n}',
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "const x = {a: 1, 'b': [2, 3]}; // comment",
    "1234567",
    "3.14159",
    "1,000,000 and 0.5% of 12345678901234567890",
    "phone: +1 (555) 123-4567, year 2024",
    "x=10;y=20;z=x*y",
    "\U0001F999",
    "I love \U0001F999.cpp",
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 family",
    "\U0001F3F3\ufe0f\u200d\U0001F308 flag and \U0001F44D\U0001F3FD thumbs",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "Cafe\u0301 re\u0301sume\u0301 (decomposed)",
    "Caf\u00e9 r\u00e9sum\u00e9 (composed)",
    "\u212b angstrom sign, \ufb01 ligature, \uff21\uff42\uff43 fullwidth",
    "a\u0308\u0304 stacked marks",
    "I'm, you're, he's, they've, we'll, she'd; DON'T, I'M, WE'LL",
    "Mr. O'Neil's 'quoted' text",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "<s>hello</s> <unk>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "text with <|endoftext|> inside",
    "<|im_start|><|im_start|>",
    "a\u0000b",
    "nbsp\u00a0here, nel\u0085there, ls\u2028ps\u2029, zwsp\u200bx",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!!!!???... ---- ____ ====",
    "https://example.com/path?query=1&b=2#frag",
    "ied 4 \u00bd months",
    "\u00c4pfel",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!",
]


def dump(path, tool, source, texts, ids, ids_special, ids_raw, pre_tokenizer=None):
    # One entry per line keeps the committed file small and its diffs readable.
    def arr(rows):
        return "[\n" + ",\n".join("  " + json.dumps(r, ensure_ascii=True) for r in rows) + "\n]"

    body = (
        "{\n"
        f'"tool": {json.dumps(tool)},\n'
        f'"source": {json.dumps(source)},\n'
        + (f'"pre_tokenizer": {json.dumps(pre_tokenizer)},\n' if pre_tokenizer else "") +
        f'"texts": {arr(texts)},\n'
        f'"ids": {arr(ids)},\n'
        f'"ids_special": {arr(ids_special)},\n'
        f'"ids_raw": {arr(ids_raw)}\n'
        "}\n"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
    print(f"wrote {path} ({len(body)} bytes, {len(texts)} texts)")


def hf_folder(repo, name, out_dir):
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(os.path.join(repo, "tests/data/tokenizers", name, "tokenizer.json"))
    ids = [tok.encode(t, add_special_tokens=False).ids for t in CORPUS]
    ids_special = [tok.encode(t, add_special_tokens=True).ids for t in CORPUS]
    tok.encode_special_tokens = True
    ids_raw = [tok.encode(t, add_special_tokens=False).ids for t in CORPUS]
    dump(os.path.join(out_dir, f"{name}.json"), f"tokenizers=={tokenizers.__version__}",
         f"tests/data/tokenizers/{name}/tokenizer.json", CORPUS, ids, ids_special, ids_raw)


# Split pre-tokenizers with literal {"String": ...} patterns, punctuation that is special
# in a regex among them, then ByteLevel without its regex. Applied to Llama 3's
# tokenizer.json; the fixture records it so the test builds the same tokenizer.
LITERAL_SPLIT = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"String": "."}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"String": "a+b"}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"String": "(x)"}, "behavior": "Removed", "invert": False},
    {"type": "Split", "pattern": {"String": "\\$[|"}, "behavior": "MergedWithPrevious",
     "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
]}
LITERAL_CORPUS = CORPUS + ["a+b aab a+bb (x)(x) x.y.z 3.14 \\$[| end\\$[|", "...  a  .  b"]


def literal_split(repo, out_dir):
    import tokenizers

    with open(os.path.join(repo, "tests/data/tokenizers/llama3/tokenizer.json"), encoding="utf-8") as f:
        spec = json.load(f)
    spec["pre_tokenizer"] = LITERAL_SPLIT
    tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
    ids = [tok.encode(t, add_special_tokens=False).ids for t in LITERAL_CORPUS]
    ids_special = [tok.encode(t, add_special_tokens=True).ids for t in LITERAL_CORPUS]
    tok.encode_special_tokens = True
    ids_raw = [tok.encode(t, add_special_tokens=False).ids for t in LITERAL_CORPUS]
    path = os.path.join(out_dir, "literal_split.json")
    dump(path, f"tokenizers=={tokenizers.__version__}",
         "tests/data/tokenizers/llama3/tokenizer.json with pre_tokenizer replaced by "
         "\"pre_tokenizer\"", LITERAL_CORPUS, ids, ids_special, ids_raw, LITERAL_SPLIT)


def smollm2(models, out_dir):
    import transformers

    fname = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not os.path.exists(os.path.join(models, fname)):
        sys.exit(f"{models}/{fname} missing; run deploy/fetch-model.sh smollm2-135m-instruct")
    tok = transformers.AutoTokenizer.from_pretrained(models, gguf_file=fname)
    # transformers' GGUF converter ignores tokenizer.ggml.pre ("smollm") and installs a plain
    # ByteLevel pre-tokenizer. SmolLM2's published tokenizer.json (and llama.cpp's "smollm")
    # first isolates every \p{N} character, which differs for numeric characters that are
    # not in the vocabulary as merges would have them, e.g. " ½". Restore the original.
    from tokenizers import pre_tokenizers

    converted = [tok.encode(t, add_special_tokens=False) for t in CORPUS]
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    ids = [tok.encode(t, add_special_tokens=False) for t in CORPUS]
    for t, a, b in zip(CORPUS, converted, ids):
        if a != b:
            print(f"  note: GGUF converter's pre-tokenizer differs on {t!r}: {a} vs {b}")
    ids_special = [tok.encode(t, add_special_tokens=True) for t in CORPUS]
    ids_raw = [tok.encode(t, add_special_tokens=False, split_special_tokens=True) for t in CORPUS]
    dump(os.path.join(out_dir, "smollm2.json"), f"transformers=={transformers.__version__}",
         f"{fname} (AutoTokenizer gguf_file; pre-tokenizer Digits+ByteLevel as SmolLM2's "
         "tokenizer.json)", CORPUS, ids, ids_special, ids_raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--models", default=os.environ.get(
        "TESSERA_MODELS", os.path.expanduser("~/.cache/tessera/models")))
    ap.add_argument("--only-tokenizers", action="store_true",
                    help="skip the SmolLM2 fixture (needs transformers and the GGUF)")
    args = ap.parse_args()
    repo = os.path.abspath(args.repo)
    out_dir = os.path.join(repo, "tests/data/tokenizer_fixtures")
    os.makedirs(out_dir, exist_ok=True)
    for name in ("llama3", "qwen3", "llama2"):
        hf_folder(repo, name, out_dir)
    literal_split(repo, out_dir)
    if args.only_tokenizers:
        return
    smollm2(args.models, out_dir)


if __name__ == "__main__":
    main()
