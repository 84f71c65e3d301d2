#!/usr/bin/env python3
"""Records transformers' YaRN RoPE parameters (inverse frequencies and the cos/sin factor)
for a few configurations, as the reference for Tessera's kernels::RopeInvFreq (kYarn) and
YarnAttentionFactor (tests/model/model_config_test.cc).

Needs: deploy/setup.sh --fixtures (torch, transformers). Not needed to run the tests.
Usage: .venv/bin/python3 tools/golden/make_rope_fixtures.py [OUT.json]
       (default tests/data/rope/yarn.json)
"""
import json
import os
import sys

import torch
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

# (name, head_dim, rope_parameters): DeepSeek-V3 and Kimi-K2 as shipped (mscale =
# mscale_all_dim), Qwen's long-context YaRN (only factor: cos/sin scaled by mscale(factor)),
# an explicit attention_factor, an untruncated range (gpt-oss) and unequal mscales.
CASES = [
    ("deepseek_v3", 64, dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, beta_fast=32,
                             beta_slow=1, mscale=1.0, mscale_all_dim=1.0,
                             original_max_position_embeddings=4096)),
    ("kimi_k2", 64, dict(rope_type="yarn", rope_theta=50000.0, factor=32.0, beta_fast=1.0,
                         beta_slow=1.0, mscale=1.0, mscale_all_dim=1.0,
                         original_max_position_embeddings=4096)),
    ("qwen", 128, dict(rope_type="yarn", rope_theta=1000000.0, factor=4.0,
                       original_max_position_embeddings=32768)),
    ("attention_factor", 32, dict(rope_type="yarn", rope_theta=10000.0, factor=8.0,
                                  attention_factor=0.75, original_max_position_embeddings=2048)),
    ("untruncated", 64, dict(rope_type="yarn", rope_theta=150000.0, factor=32.0, beta_fast=32.0,
                             beta_slow=1.0, truncate=False, original_max_position_embeddings=4096)),
    ("unequal_mscale", 16, dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, mscale=1.0,
                                mscale_all_dim=0.5, original_max_position_embeddings=32)),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "data", "rope", "yarn.json")
    cases = []
    for name, head_dim, rp in CASES:
        config = transformers.LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4,
                                          head_dim=head_dim, max_position_embeddings=
                                          rp["original_max_position_embeddings"] * int(rp["factor"]),
                                          rope_parameters=dict(rp))
        inv_freq, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config, torch.device("cpu"))
        cases.append({"name": name, "head_dim": head_dim, "rope_parameters": rp,
                      "inv_freq": inv_freq.double().tolist(),
                      "attention_factor": float(attention_factor)})
    with open(out, "w") as f:
        json.dump({"tool": f"transformers=={transformers.__version__} torch=={torch.__version__}",
                   "cases": cases}, f, indent=1)
    print(out, len(cases), "cases")


if __name__ == "__main__":
    main()
