"""Options shared by `ask`, `compare` and `inspect` for the articles' experiments: a raw prompt
(no chat template, BOS as the model's tokenizer adds it, or none with --no-bos) and --logprobs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from andon.app.engine.logprobs import MAX_TOP

if TYPE_CHECKING:
    from andon.app.engine.client import EngineLike

RAW_HELP = "continue the prompt as it is, without the chat template (what a base model needs)"
NO_BOS_HELP = "with --raw: no BOS token before the prompt, where the model's tokenizer adds one"


def add_raw_options(p: argparse.ArgumentParser, *, raw: bool = True) -> None:
    """--raw (unless the command has its own) and --no-bos."""
    if raw:
        p.add_argument("--raw", action="store_true", help=RAW_HELP)
    p.add_argument("--no-bos", action="store_true", help=NO_BOS_HELP)


def logprobs_count(text: str) -> int:
    """--logprobs K: 0 to 20 alternatives per token (OpenAI's top_logprobs range)."""
    try:
        k = int(text)
    except ValueError:
        k = -1
    if not 0 <= k <= MAX_TOP:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 0 to {MAX_TOP}")
    return k


def check_raw(args: argparse.Namespace) -> None:
    """--no-bos only with --raw (a chat template writes its own beginning); --logprobs only with --json."""
    from andon.app.errors import UsageError

    if getattr(args, "no_bos", False) and not getattr(args, "raw", False):
        raise UsageError("--no-bos needs --raw (with a chat template, the template decides the prompt's beginning)")
    if getattr(args, "logprobs", None) is not None and not getattr(args, "json", False):
        raise UsageError("--logprobs needs --json (the log-probabilities are part of the JSON object)")


def raw_tokens(engine: EngineLike, prompt: str, no_bos: bool) -> list[int]:
    """The prompt's tokens as llama.cpp's completion takes them: special tokens parsed, BOS first
    where the model's tokenizer adds one (not with --no-bos)."""
    return engine.tokenize(prompt, special=True, add_bos=not no_bos)


def raw_prompt(args: argparse.Namespace, engine: EngineLike, prompt: str) -> Sequence[int] | None:
    """The raw prompt's tokens with --raw, else None (the chat template makes the prompt)."""
    return raw_tokens(engine, prompt, args.no_bos) if getattr(args, "raw", False) else None
