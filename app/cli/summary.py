"""`--verbose`: andon's own account of a reply on standard error, as `ollama run --verbose` gives it
(durations, counts and rates), with a short summary of the model. llama.cpp's log is `--log`'s."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from andon.app.engine.engine import Done

LOG_HELP = "show llama.cpp's own log on standard error (loading, devices, memory)"


def duration(seconds: float) -> str:
    """As Ollama writes durations: 1.234s, or 56.7ms under a second."""
    return f"{seconds:.3f}s" if seconds >= 1 else f"{seconds * 1000:.1f}ms"


def model_lines(path: Path, n_ctx: int) -> list[str]:
    """The model: its file, architecture, parameters, quantization and context (used and trained)."""
    from andon.app.models.catalog import display_name, human_count
    from andon.app.models.files import read_gguf_info

    info = read_gguf_info(path)
    trained = f" (trained on {info.context_length})" if info.context_length else ""
    return [
        f"model:                {display_name(path)}",
        f"file:                 {path}",
        f"architecture:         {info.architecture}, {human_count(info.parameters)} parameters, {info.quantization}",
        f"context:              {n_ctx} tokens{trained}",
    ]


def reply_lines(done: Done, total_s: float, load_s: float) -> list[str]:
    """The reply's timings as `ollama run --verbose` lists them, then its finish reason and seed."""
    u = done.usage
    eval_s = u.completion_tokens / u.tokens_per_second if u.tokens_per_second else 0.0
    lines = [
        f"total duration:       {duration(total_s)}",
        f"load duration:        {duration(load_s)}",
        f"prompt eval count:    {u.prompt_tokens} token(s)",
        f"prompt eval duration: {duration(u.ttft_s)}",
        f"prompt eval rate:     {u.prompt_eval_tokens / u.ttft_s if u.ttft_s else 0:.2f} tokens/s",
        f"eval count:           {u.completion_tokens} token(s)",
        f"eval duration:        {duration(eval_s)}",
        f"eval rate:            {u.tokens_per_second:.2f} tokens/s",
    ]
    if u.thinking_tokens:  # a reasoning model's: the eval count told apart, as --json's usage does
        lines.append(f"thinking tokens:      {u.thinking_tokens} token(s)")
        lines.append(f"answer tokens:        {u.completion_tokens - u.thinking_tokens} token(s)")
    if u.rewinds:
        lines.append(f"banned rewinds:       {u.rewinds}")
    if u.drafted_tokens:
        lines.append(f"drafted tokens:       {u.drafted_tokens} ({u.accepted_tokens} accepted)")
    return [*lines, f"finish reason:        {done.finish_reason}", f"seed:                 {done.seed}"]
