#!/usr/bin/env python3
"""Makes tests/data/quants: blocks of every GGUF quantized type Tessera reads, with gguf-py's
dequantization of them, so that Tessera's scalar dequantization is checked against an
independent implementation (tests/kernels/dequant_test.cc).

For each type: 8 blocks of random bytes (every bit pattern of the quants is valid) whose f16
fields (d, m, dmin) are set to finite values in [-0.01, 0.01], written raw to TYPE.bin, and
gguf.quants.dequantize() of them as little-endian float32 to TYPE.f32.

Needs: pip install gguf numpy  (not needed to run the tests)
Usage: python3 tools/golden/make_quant_fixtures.py [OUT_DIR]   (default tests/data/quants)
"""
import importlib.metadata
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

# Byte offsets of each type's f16 fields within a block (ggml's block layouts).
HALVES = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ4_NL": [0], "IQ4_XS": [0],
}
BLOCKS = 8


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "data", "quants")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261203)
    for name, halves in HALVES.items():
        qt = QT[name]
        elems, size = GGML_QUANT_SIZES[qt]
        blocks = rng.integers(0, 256, size=(BLOCKS, size), dtype=np.uint8)
        for h in halves:
            vals = rng.uniform(-0.01, 0.01, size=BLOCKS).astype(np.float16)
            blocks[:, h:h + 2] = vals.view(np.uint8).reshape(BLOCKS, 2)
        expected = dequantize(blocks.reshape(-1), qt).astype("<f4").reshape(-1)
        assert expected.size == BLOCKS * elems and np.all(np.isfinite(expected))
        blocks.tofile(os.path.join(out, f"{name}.bin"))
        expected.tofile(os.path.join(out, f"{name}.f32"))
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(
            "# Quantized-block fixtures\n\n"
            "Made by `tools/golden/make_quant_fixtures.py` with gguf-py "
            f"{importlib.metadata.version('gguf')} and numpy {importlib.metadata.version('numpy')}: "
            f"for each type, `TYPE.bin` holds {BLOCKS} random blocks (f16 fields set to finite "
            "values in [-0.01, 0.01]) and `TYPE.f32` gguf.quants.dequantize() of them as "
            "little-endian float32. `tests/kernels/dequant_test.cc` checks Tessera's "
            "DequantizeRow against them.\n")


if __name__ == "__main__":
    main()
