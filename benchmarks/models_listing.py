"""How long reading a GGUF header and listing models take: llama.cpp's reader against the gguf package's.

`andon models` reads the header of every model it finds, and a memory estimate reads one before a
model loads: both must stay fast with many files and large vocabularies. Prints milliseconds per
header for each reader on the embedded model (49,152 tokens) and, if installed, Gemma 3 270M
(262,144 tokens), and the time of one whole listing.

    python benchmarks/models_listing.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from andon.app.engine import llama_log
from andon.app.models import gguf_header
from andon.app.models.catalog import list_models
from andon.app.models.files import embedded_model_path, packaged_gemma


def ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    llama_log.install(False)
    files: list[tuple[str, Path]] = [("embedded SmolLM2-135M", embedded_model_path())]
    gemma = packaged_gemma()
    if gemma is not None and gemma[0].is_file():
        files.append(("Gemma 3 270M", gemma[0]))
    for label, path in files:
        native = ms(partial(gguf_header.read, path), args.repeat)
        package = ms(partial(gguf_header.read_with_gguf_package, path), max(1, args.repeat // 2))
        print(f"{label}: llama.cpp's reader {native:.1f} ms, gguf package's GGUFReader {package:.0f} ms "
              f"({package / native:.0f}x)")  # fmt: skip
    listed = list_models()[0]
    whole = ms(list_models, args.repeat)
    print(f"andon models: {len(listed)} models listed in {whole:.0f} ms")


if __name__ == "__main__":
    main()
