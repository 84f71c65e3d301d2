#!/usr/bin/env python3
"""Reference logits for the real models' GGUFs (SmolLM2-135M-Instruct Q4_1, Gemma 3 270M
instruct Q4_K_M), from Hugging Face transformers.

transformers loads the GGUF itself (from_pretrained(..., gguf_file=...)), dequantizing the
weights to f32, and its tokenizer and chat template from the same file. For each prompt
this records the prompt ids, the argmax at every position, the full logits of the last
position, and the greedy continuation. Tessera must match these.

Needs: pip install torch transformers gguf numpy accelerate; the model in the cache
(deploy/fetch-model.sh smollm2-135m-instruct | gemma3-270m-it).
Usage: python3 tools/golden/make_model_reference.py MODEL [OUT_DIR]
       MODEL: smollm2 | gemma3  (OUT_DIR default tests/data/MODEL)
"""
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch
import transformers

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

# Gemma 3 attends locally over 512 tokens in five layers of six: its long prompt (the one
# above three times, about 700 tokens) runs past the window, and its chat prompt carries a
# system message (which Gemma's template folds into the first user turn).
MODELS = {
    "smollm2": dict(gguf="SmolLM2-135M-Instruct.Q4_1.gguf", prompts=PROMPTS, new_tokens=16),
    "gemma3": dict(gguf="gemma-3-270m-it-Q4_K_M.gguf", new_tokens=8,
                   chat_template="tests/data/chat_templates/gemma3.jinja", prompts=[
        PROMPTS[0],
        ("chat", [{"role": "system", "content": "You answer in one short sentence."},
                  {"role": "user", "content": "What is the capital of France?"}]),
        ("long", " ".join([PROMPTS[3][1]] * 3)),
    ]),
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in MODELS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(MODELS)} [OUT_DIR]")
    spec = MODELS[sys.argv[1]]
    GGUF = spec["gguf"]
    cache = os.environ.get("TESSERA_MODELS", os.path.expanduser("~/.cache/tessera/models"))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "data", sys.argv[1])
    os.makedirs(out, exist_ok=True)
    tok = transformers.AutoTokenizer.from_pretrained(cache, gguf_file=GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        cache, gguf_file=GGUF, dtype=torch.float32).eval()
    ref = {"tool": f"transformers=={transformers.__version__} torch=={torch.__version__} "
                   f"gguf=={importlib.metadata.version('gguf')}",
           "model": GGUF, "prompts": []}
    last = []
    with torch.no_grad():
        for name, prompt in spec["prompts"]:
            if isinstance(prompt, list):
                template = None
                if tok.chat_template is None and "chat_template" in spec:  # not in the GGUF
                    root = os.path.join(os.path.dirname(__file__), "..", "..")
                    with open(os.path.join(root, spec["chat_template"])) as f:
                        template = f.read()
                ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                              chat_template=template)
                if hasattr(ids, "input_ids"):
                    ids = ids["input_ids"]
            else:
                ids = tok(prompt)["input_ids"]
            ids = [int(i) for i in ids]
            x = torch.tensor([ids])
            logits = model(x).logits[0].float()
            gen = model.generate(x, max_new_tokens=spec["new_tokens"], do_sample=False)
            ref["prompts"].append({
                "name": name, "text": prompt if isinstance(prompt, str) else prompt[-1]["content"],
                "chat": isinstance(prompt, list), "ids": ids,
                **({"system": prompt[0]["content"]} if isinstance(prompt, list) and
                   prompt[0]["role"] == "system" else {}),
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
