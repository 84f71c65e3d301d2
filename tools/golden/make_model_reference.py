#!/usr/bin/env python3
"""Reference logits for the real SmolLM2-135M-Instruct GGUF, from Hugging Face transformers.

transformers loads the GGUF itself (from_pretrained(..., gguf_file=...)), dequantizing the
Q4_1 weights to f32, and its tokenizer from the same file. For each prompt this records the
prompt ids, the argmax at every position, the full logits of the last position, and the
greedy continuation. Tessera's exact path (--exact) must match these.

Needs: pip install torch transformers gguf numpy; the model in the cache
(deploy/fetch-model.sh smollm2-135m-instruct).
Usage: python3 tools/golden/make_smollm2_reference.py [OUT_DIR]  (default tests/data/smollm2)
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch
import transformers

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    ("plain", "The capital of France is"),
    ("chat", [{"role": "user", "content": "What is the capital of France?"}]),
    ("paragraph", "Tessera is a distributed inference engine for large language models. Workers "
                  "launched by MPI each hold shards of a model's weights and exchange activations "
                  "with collectives, while a coordinator streams tokens back to clients."),
    ("long", "In 1869 the Suez Canal opened, linking the Mediterranean Sea to the Red Sea and "
             "cutting the sea route from Europe to Asia by thousands of kilometres. Ships no "
             "longer had to sail around the Cape of Good Hope. The canal is about 193 km long "
             "and has no locks, because the sea level is almost the same at both ends. Today "
             "more than fifty ships pass through it on an average day, carrying roughly twelve "
             "percent of world trade.\n\ndef fibonacci(n):\n    a, b = 0, 1\n    for _ in "
             "range(n):\n        a, b = b, a + b\n    return a\n\nprint(fibonacci(10))  # 55\n"
             "Les langues romanes, comme le fran\u00e7ais, l'espagnol et l'italien, descendent "
             "du latin. Photosynthesis converts light energy into chemical energy: plants take "
             "in carbon dioxide and water and release oxygen."),
]


def main():
    cache = os.environ.get("TESSERA_MODELS", os.path.expanduser("~/.cache/tessera/models"))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "data", "smollm2")
    os.makedirs(out, exist_ok=True)
    tok = transformers.AutoTokenizer.from_pretrained(cache, gguf_file=GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        cache, gguf_file=GGUF, torch_dtype=torch.float32).eval()
    ref = {"tool": f"transformers=={transformers.__version__} torch=={torch.__version__} "
                   f"gguf=={importlib.metadata.version('gguf')}",
           "model": GGUF, "prompts": []}
    last = []
    with torch.no_grad():
        for name, prompt in PROMPTS:
            if isinstance(prompt, list):
                ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
                if hasattr(ids, "input_ids"):
                    ids = ids["input_ids"]
            else:
                ids = tok(prompt)["input_ids"]
            ids = [int(i) for i in ids]
            x = torch.tensor([ids])
            logits = model(x).logits[0].float()
            gen = model.generate(x, max_new_tokens=16, do_sample=False)
            ref["prompts"].append({
                "name": name, "text": prompt if isinstance(prompt, str) else prompt[0]["content"],
                "chat": isinstance(prompt, list), "ids": ids,
                "argmax": logits.argmax(-1).tolist(),
                "greedy": gen[0, len(ids):].tolist(),
                "greedy_text": tok.decode(gen[0, len(ids):], skip_special_tokens=True)})
            last.append(logits[-1].numpy())
    np.save(os.path.join(out, "last_logits.npy"), np.stack(last).astype(np.float32))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    for p in ref["prompts"]:
        print(p["name"], len(p["ids"]), repr(p["greedy_text"]))


if __name__ == "__main__":
    main()
