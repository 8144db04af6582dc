"""`andon models`: every GGUF model andon can use, and what one of them is."""

from __future__ import annotations

import argparse
import json
import sys

from andon.app.engine import llama_log
from andon.app.models.catalog import ListedModel, find_model, human_count, human_size, info_for, list_models
from andon.presets.commands import parameter_lines

COLUMNS = ("NAME", "SOURCE", "SIZE", "ARCH", "PARAMS", "QUANT", "CONTEXT", "TEMPLATE")
SHOWN = ("name", "source", "path", "location", "architecture", "general_name", "quantization", "context_length",
         "embedding_length", "block_count", "head_count", "head_count_kv", "vocab_size")  # fmt: skip


def add_parser(sub) -> None:
    p = sub.add_parser(
        "models",
        help="every GGUF model andon found (embedded, Ollama, Hugging Face, LM Studio, your folders)",
        description="List the models andon can use, or show one. Any NAME listed works with --model.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="show this model: its header and its own defaults")
    p.add_argument("--json", action="store_true", help="print JSON: a list of objects (one object with NAME)")
    p.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    llama_log.install(args.verbose)
    if args.name:
        return _show(args.name, args.json)
    listed, problems = list_models()
    for problem in problems:
        print(f"andon: skipped {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps([m.to_json() for m in listed], ensure_ascii=False, indent=1))
        return 0
    if not listed:
        print("no models found (andon looks in Ollama's store, the Hugging Face cache, LM Studio's folders, "
              "andon's models folder and the folders in models.toml)")  # fmt: skip
        return 0
    rows = [COLUMNS, *(_row(m) for m in listed)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _row(m: ListedModel) -> tuple[str, ...]:
    i = m.info
    return (
        m.entry.name,
        m.entry.source,
        human_size(i.file_size),
        i.architecture,
        human_count(i.parameters),
        i.quantization,
        str(i.context_length or "?"),
        "yes" if i.has_template else "no",
    )


def _show(name: str, as_json: bool) -> int:
    entry = find_model(name)
    listed = ListedModel(entry, info_for(entry))
    if as_json:
        print(json.dumps(listed.to_json(), ensure_ascii=False, indent=1))
        return 0
    data = listed.to_json()
    for key in SHOWN:
        print(f"{key:<17} {data[key]}")
    print(f"{'parameters':<17} {human_count(data['parameters'])} ({data['parameters']:,})")
    joined = "" if data["ready"] else " (joined from its package on first use)"
    print(f"{'size':<17} {human_size(data['size'])}{joined}")
    print(f"{'chat template':<17} {'yes' if data['chat_template'] else 'no (replies continue the text plainly)'}")
    if entry.defaults is not None:
        print("defaults of this model (a preset's own values win; --set wins over both)")
        for line in parameter_lines(data["defaults"]["parameters"]):
            print(f"  {line}")
        if entry.defaults.system:
            print(f"  system: {entry.defaults.system}")
        for note in entry.defaults.notes:
            print(f"andon: {entry.name}: {note}", file=sys.stderr)
    return 0
