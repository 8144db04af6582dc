"""`andon inspect`, `andon compare` and `andon eval`: see what the samplers and presets do."""

from __future__ import annotations

import argparse
import json
import math
import secrets
import shutil
import sys
import textwrap
from contextlib import closing
from pathlib import Path

from andon.app.chat.settings import model_path_for, resolve_settings
from andon.app.cli.progress import ProgressReport
from andon.app.cli.prompt import STDIN_HELP, read_prompt
from andon.app.cli.raw import RAW_HELP, add_raw_options, check_raw, raw_prompt
from andon.app.cli.summary import LOG_HELP, model_lines
from andon.app.engine.client import EngineProcess
from andon.app.engine.engine import ModelOptions
from andon.app.engine.perplexity import DEFAULT_CTX, needed
from andon.app.errors import UsageError
from andon.app.models.files import embedded_model_path
from andon.app.study.evaluation import TOKENIZERS, EvalResult, Question, compare, evaluate, questions
from andon.app.study.inspector import prompt_tokens, render
from andon.app.study.sweep import Sweep, cells_for, parse_grid, run_sweep
from andon.app.study.sweep import render as sweep_render
from andon.presets.commands import apply
from andon.presets.parameters import DEFAULTS
from andon.presets.store import PresetStore

VERBOSE_HELP = "show the model's summary on standard error"
OUT_SUFFIXES = (".svg", ".html", ".txt")  # rich's recorded console: save_svg, save_html, save_text


def add_parsers(sub, common) -> None:
    ins = sub.add_parser("inspect", help="next-token candidates before the chain and after each sampler")
    ins.add_argument("prompt", nargs="?", metavar="PROMPT", help=STDIN_HELP)
    common(ins)
    ins.add_argument("--system", metavar="TEXT", help="system prompt (default: the preset's)")
    ins.add_argument("--raw", action="store_true", help="use the prompt as it is, without the chat template")
    ins.add_argument("--top", type=int, default=10, metavar="N", help="candidates to show (default 10)")
    ins.add_argument("--temperatures", metavar="T,T,...", help="also show the candidates under these temperatures")
    ins.add_argument("--json", action="store_true", help="print one JSON object")
    ins.add_argument(
        "--perplexity", metavar="FILE", help="the text's perplexity under the model, as llama-perplexity computes it"
    )
    ins.add_argument("--ctx", type=int, default=DEFAULT_CTX, metavar="N",
                     help=f"--perplexity: chunk size in tokens (default {DEFAULT_CTX})")  # fmt: skip
    ins.set_defaults(func=cmd_inspect)

    cmp = sub.add_parser("compare", help="generate N replies per preset and measure their diversity")
    cmp.add_argument("prompt", nargs="?", metavar="PROMPT", help=STDIN_HELP)
    cmp.add_argument("--presets", metavar="A,B,...", help="presets to compare (default: every built-in preset)")
    cmp.add_argument("-n", type=int, default=5, metavar="N", help="replies per preset (default 5)")
    cmp.add_argument("--seed", type=int, help="seed of the first reply (each next reply adds 1); random if absent")
    cmp.add_argument("--model", metavar="PATH")
    cmp.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="applied to every preset")
    cmp.add_argument("--json", action="store_true")
    cmp.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    cmp.add_argument("--log", action="store_true", help=LOG_HELP)
    cmp.add_argument(
        "--grid",
        metavar="NAME=V1,V2,...",
        action="append",
        default=[],
        help="sweep: a parameter's values (one or two --grid); N replies per combination, as a heat map",
    )
    cmp.add_argument("--preset", metavar="NAME", help="--grid: the preset the grid changes (default: balanced)")
    cmp.add_argument("--eval", action="store_true", help="--grid: also the accuracy on the factual questions")
    cmp.add_argument("--limit", type=int, metavar="N", help="--eval: only the first N questions")
    cmp.add_argument("--csv", action="store_true", help="--grid: print the figures as CSV")
    cmp.add_argument("--out", metavar="FILE.svg|FILE.html|FILE.txt", help="--grid: save the heat maps")
    cmp.add_argument("--tokenize", choices=TOKENIZERS, help="Self-BLEU's tokenizer (default: by the replies' script)")
    cmp.add_argument("--raw", action="store_true", help=RAW_HELP)
    add_raw_options(cmp, raw=False)  # fmt: skip
    cmp.set_defaults(func=cmd_compare)

    ev = sub.add_parser("eval", help="accuracy of presets on the shipped knowledge questions")
    ev.add_argument("--presets", default="factual,balanced,creative", metavar="A,B,...")
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    ev.add_argument("--seed", type=int, default=1, help="seed for sampling presets (default 1)")
    ev.add_argument("--model", metavar="PATH")
    ev.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="applied to every preset")
    ev.add_argument("--json", action="store_true")
    ev.add_argument(
        "--verbose", action="store_true", help="show each question, its expected answer and every preset's answer"
    )
    ev.add_argument("--log", action="store_true", help=LOG_HELP)
    ev.set_defaults(func=cmd_eval)


def _temperatures(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--temperatures {text!r}: expected numbers separated by commas, e.g. 0.4,1.0,1.6") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise UsageError(f"--temperatures {text!r}: temperatures must be finite numbers >= 0, e.g. 0.4,1.0,1.6")
    return values


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.perplexity is not None:
        return cmd_perplexity(args)
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    temps = _temperatures(args.temperatures)
    prompt = read_prompt(args.prompt)
    s = resolve_settings(args.preset, args.set, args.system, args.model)
    messages = s.messages(prompt)
    with closing(EngineProcess(ModelOptions.from_parameters(s.model_path, s.params, args.log))) as engine:
        tokens = prompt_tokens(engine, None if args.raw else messages, prompt if args.raw else None)
        result = engine.inspect(tokens, s.params, args.top, temps)
    if args.verbose:
        _model_summary(s.model_path, engine.n_ctx)
    if args.json:
        print(json.dumps({"preset": s.preset.name, **result.to_json()}, ensure_ascii=False))
    else:  # at a terminal the table fits its width, as the app's panel; piped, it is whole
        print(render(result, width=shutil.get_terminal_size().columns if sys.stdout.isatty() else None))
    return 0


def cmd_perplexity(args: argparse.Namespace) -> int:
    """inspect --perplexity FILE [--ctx N]: llama-perplexity's figure for the file's text."""
    text = _read_text(args.perplexity)
    s = resolve_settings(args.preset, [*args.set, f"num_ctx={max(args.ctx, 1)}"], None, args.model)
    with closing(EngineProcess(ModelOptions.from_parameters(s.model_path, s.params, args.log))) as engine:
        tokens = engine.tokenize(text, special=False, add_bos=True)  # common_tokenize(ctx, text, true)
        if (why := needed(len(tokens), args.ctx)) is not None:
            raise UsageError(f"{args.perplexity}: {why}")
        result = engine.perplexity(tokens, args.ctx)
    if args.verbose:
        _model_summary(s.model_path, engine.n_ctx)
    if args.json:
        print(json.dumps({"file": args.perplexity, **result.to_json()}, ensure_ascii=False))
    else:
        print(f"perplexity: {result.perplexity:.4f} ({result.chunks} chunks of {result.n_ctx} tokens, "
              f"{result.scored} tokens scored of {result.tokens})")  # fmt: skip
    return 0


def _read_text(path: str) -> str:
    """A UTF-8 text file; UsageError (one line) where it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--perplexity {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--perplexity {path}: not UTF-8 text") from None


def _model_summary(path: Path, n_ctx: int) -> None:
    """--verbose: the model's file, architecture, size and context on standard error."""
    print("\n".join(model_lines(path, n_ctx)), file=sys.stderr)


def _runs(names: str, sets: list[str]):
    store = PresetStore()
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise UsageError("--presets needs at least one preset name")
    return [(s.preset.name, s.params, s.system) for s in (resolve_settings(n, sets, store=store) for n in wanted)]


def say_notices(notices: list[str]) -> None:
    """What the engine said of the replies, each once, after the progress bar (as `andon ask` says them)."""
    for text in dict.fromkeys(notices):
        print(f"andon: {text}", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    if args.grid:
        return cmd_sweep(args)
    if args.n < 2:
        raise UsageError("-n must be at least 2 (Self-BLEU compares replies with each other)")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be >= 0 (reply i uses seed + i, so a run can be repeated)")
    prompt = read_prompt(args.prompt)
    runs = _runs(args.presets or ",".join(PresetStore().builtin_names()), args.set)
    options = ModelOptions.from_parameters(model_path_for(args.model), runs[0][1], args.log)
    notices: list[str] = []
    with (
        closing(EngineProcess(options)) as engine,
        ProgressReport("compare", args.n * len(runs), "replies") as bar,
    ):
        results = compare(engine, prompt, runs, args.n, args.seed, bar.advance, notices)
    say_notices(notices)
    if args.verbose:
        _model_summary(options.path, engine.n_ctx)
    if args.json:
        print(
            json.dumps({"prompt": prompt, "n": args.n, "presets": [r.to_json() for r in results]}, ensure_ascii=False)
        )
        return 0
    print(f"{'preset':<12} {'self_bleu':>9} {'distinct_1':>10} {'distinct_2':>10} {'mean_tokens':>11}")
    for r in results:
        f = r.figures
        print(f"{r.preset:<12} {f['self_bleu']:>9.2f} {f['distinct_1']:>10.3f} {f['distinct_2']:>10.3f} "
              f"{f['mean_tokens']:>11.1f}")  # fmt: skip
    print(f"seeds: {results[0].seeds[0]}..{results[0].seeds[-1]} (rerun with --seed {results[0].seeds[0]})")
    for r in results:
        print(f"\n== {r.preset}")
        for i, text in enumerate(r.replies, 1):
            print(f"--- reply {i} (seed {r.seeds[i - 1]})\n{text.strip()}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """compare PROMPT --grid NAME=V,... [--grid NAME=V,...]: a sweep's heat maps, table, JSON or CSV."""
    axes = parse_grid(args.grid)
    if args.n < 2:
        raise UsageError("-n must be at least 2 (Self-BLEU compares replies with each other)")
    if args.out and Path(args.out).suffix.lower() not in OUT_SUFFIXES:
        raise UsageError(f"--out {args.out}: expected a file ending in {', '.join(OUT_SUFFIXES)}")
    check_raw(args)
    s = resolve_settings(args.preset, args.set, None, args.model)
    for cell in cells_for(axes, 1, 0):  # every combination is refused or taken before the model loads
        apply(s.params, cell.values)
    prompt = read_prompt(args.prompt)
    qs = questions()[: args.limit] if args.eval else []
    sweep = Sweep(prompt, axes, args.n, cells_for(axes, args.n, _base_seed(args.seed)), args.tokenize)
    total = len(sweep.cells) * (args.n + len(qs))
    with (
        closing(EngineProcess(ModelOptions.from_parameters(s.model_path, s.params, args.log))) as engine,
        ProgressReport("sweep", total, "replies") as bar,
    ):
        raw = raw_prompt(args, engine, prompt)
        run_sweep(engine, sweep, s.params, s.system, prompt_tokens=raw, questions=qs,
                  progress=bar.advance)  # fmt: skip
    return _show_sweep(sweep, args)


def _base_seed(seed: int | None) -> int:
    if seed is not None and seed < 0:
        raise UsageError(f"--seed {seed}: must be >= 0 (reply i uses seed + i, so a run can be repeated)")
    return secrets.randbits(30) if seed is None else seed


def _show_sweep(sweep: Sweep, args: argparse.Namespace) -> int:
    metrics = ["self_bleu", "distinct_2", *(["accuracy"] if args.eval else [])]
    if args.out:
        console = sweep_render(sweep, metrics, record=True)
        suffix = Path(args.out).suffix.lower()
        if suffix == ".svg":
            console.save_svg(args.out, title="andon compare --grid")
        elif suffix == ".html":
            console.save_html(args.out)
        else:
            console.save_text(args.out)
    if not sweep.complete:
        print(f"andon: sweep stopped: {len(sweep.done())} of {len(sweep.cells)} cells done", file=sys.stderr)
    if args.json:
        print(json.dumps(sweep.to_json(), ensure_ascii=False))
    elif args.csv:
        sys.stdout.write(sweep.to_csv())
    elif not args.out:
        sweep_render(sweep, metrics)
        print(f"seeds: {sweep.cells[0].seeds[0]}..{sweep.cells[0].seeds[-1]} "
              f"(rerun with --seed {sweep.cells[0].seeds[0]})")  # fmt: skip
    return 0 if sweep.complete else 130


def cmd_eval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be at least 1 (the number of questions to ask)")
    apply(DEFAULTS, {"seed": args.seed})  # a seed the parameter refuses is refused before the model loads
    qs = questions()[: args.limit]
    runs = _runs(args.presets, args.set)
    options = ModelOptions.from_parameters(model_path_for(args.model), runs[0][1], args.log)
    notices: list[str] = []
    with closing(EngineProcess(options)) as engine, ProgressReport("eval", len(qs) * len(runs), "answers") as bar:
        results = evaluate(engine, runs, qs, seed=args.seed, progress=bar.advance, notices=notices)
    say_notices(notices)
    if args.json:
        print(json.dumps({
            "questions": len(qs), "seed": args.seed,
            "model": str(args.model or embedded_model_path().name),
            "presets": [{"preset": r.preset, "accuracy": round(r.accuracy, 4), "correct": sum(r.correct),
                         "answers": [{"question": q.question, "expected": list(q.answers), "reply": t, "correct": c}
                                     for q, t, c in zip(qs, r.replies, r.correct, strict=True)]}
                        for r in results],
        }, ensure_ascii=False))  # fmt: skip
        return 0
    print(f"{len(qs)} questions, seed {args.seed}")
    print(f"{'preset':<12} {'accuracy':>8} {'correct':>8}")
    for r in results:
        print(f"{r.preset:<12} {r.accuracy * 100:>7.1f}% {sum(r.correct):>5}/{len(qs)}")
    if args.verbose:
        _print_answers(qs, results)
    return 0


def _print_answers(qs: list[Question], results: list[EvalResult]) -> None:
    """--verbose: each question, its expected answers, and each preset's reply (✓ right, ✗ wrong) on one
    line of 80 columns (shortened at a word with …; --json has every reply whole)."""
    width = max(len(r.preset) for r in results)
    for i, q in enumerate(qs):
        print(f"\n{i + 1}. {q.question}\n   expected: {' / '.join(q.answers)}")
        for r in results:
            reply = textwrap.shorten(r.replies[i], 80 - 6 - width, placeholder=" …") or "(empty reply)"
            print(f"   {'✓' if r.correct[i] else '✗'} {r.preset:<{width}}  {reply}")
