"""Tokens per second under structured output against the same model unconstrained.

One run on one model: free text, `format: json` and a JSON schema, alternating, several rounds
with the same seeds, the balanced preset. Prints each mode's tokens per second, its ratio to free
text (target >= 0.85) and the fraction of tokens that needed the grammar's full-vocabulary
fallback (the chain's pick refused, the logits masked, the chain run again).

    python benchmarks/structured_speed.py [--tokens 256] [--rounds 4] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
from andon.app.engine.engine import Done, Engine, ModelOptions
from andon.app.models.files import embedded_model_path
from andon.presets.parameters import Parameters
from andon.presets.store import PresetStore

PROMPT = [
    {
        "role": "user",
        "content": "Describe three fictional people as JSON: for each a name, an age, a city and a list of hobbies.",
    }
]
SCHEMA = {
    "type": "object",
    "properties": {
        "people": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer"},
                    "city": {"type": "string"},
                    "hobbies": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["name", "age", "city", "hobbies"],
            },
        }
    },
    "required": ["people"],
}
MODES = {"free text": "", "format json": "json", "schema": SCHEMA}


@dataclass
class Tally:
    tokens: int = 0
    seconds: float = 0.0
    sampled: int = 0  # tokens chosen, the end of turn included
    fallbacks: int = 0
    replies: int = 0
    valid: int = 0  # replies that parse (JSON modes)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def run(engine: Engine, params: Parameters, tally: Tally) -> None:
    constraint = engine.constraint_for(params)
    done = None
    for event in engine.stream(PROMPT, params, constraint=constraint):
        if isinstance(event, Done):
            done = event
    assert done is not None
    n = done.usage.completion_tokens
    tally.tokens += n
    tally.seconds += n / done.usage.tokens_per_second if done.usage.tokens_per_second else 0.0
    tally.sampled += n + (done.finish_reason == "stop")
    tally.replies += 1
    if constraint is not None:
        tally.fallbacks += constraint.masks
        try:
            json.loads(done.text)
            tally.valid += 1
        except json.JSONDecodeError:
            pass  # cut by --tokens: counted as not valid, and shown


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    base = PresetStore().load("balanced").parameters
    engine = Engine(ModelOptions(args.model or embedded_model_path(), num_ctx=2048))
    tallies = {mode: Tally() for mode in MODES}
    print(f"model: {engine.model_name}; balanced preset; up to {args.tokens} tokens; {args.rounds} rounds")
    run(engine, Parameters.of({"num_predict": 8}, base=base), Tally())  # warm up
    for r in range(args.rounds):
        for mode, fmt in MODES.items():
            params = Parameters.of({"format": fmt, "num_predict": args.tokens, "seed": 100 + r}, base=base)
            run(engine, params, tallies[mode])
    free = tallies["free text"].rate
    print(f"{'mode':<12} {'tok/s':>7} {'ratio':>6} {'tokens':>7} {'fallbacks':>10} {'valid JSON':>11}")
    for mode, t in tallies.items():
        share = f"{t.fallbacks / t.sampled:.1%}" if mode != "free text" else "-"
        valid = f"{t.valid}/{t.replies}" if mode != "free text" else "-"
        print(f"{mode:<12} {t.rate:>7.1f} {t.rate / free:>6.2f} {t.tokens:>7} {share:>10} {valid:>11}")
    check_us, mask_ms = grammar_costs(engine, Parameters.of({"format": "json"}, base=base))
    print(
        f"grammar check of the chain's pick: {check_us:.0f} us; fallback mask over {engine.n_vocab} tokens: "
        f"{mask_ms:.1f} ms; one free-text token: {1000 / free:.1f} ms"
    )
    engine.close()


def grammar_costs(engine: Engine, params: Parameters) -> tuple[float, float]:
    """Microseconds per `allows` (every token) and milliseconds per `mask` (each fallback)."""
    constraint = engine.constraint_for(params)
    assert constraint is not None
    logits = np.zeros(engine.n_vocab, np.float32)
    start = time.perf_counter()
    for token in range(200):
        constraint.allows(token)
    check = (time.perf_counter() - start) / 200 * 1e6
    start = time.perf_counter()
    for _ in range(20):
        constraint.mask(logits)
    constraint.close()
    return check, (time.perf_counter() - start) / 20 * 1e3


if __name__ == "__main__":
    main()
