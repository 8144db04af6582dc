"""The inspector as the user sees it: a table of the next-token candidates through the chain
(`render`), and what the app's panel inspects (`inspect_chat`); the engine computes them
(andon.app.engine.inspection)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from andon.app.chat.session import typed_message
from andon.app.engine.inspection import Inspection
from andon.app.engine.prompt import Message
from andon.presets.parameters import Parameters
from rich.cells import cell_len

if TYPE_CHECKING:
    from andon.app.engine.client import EngineLike


def prompt_tokens(engine: EngineLike, messages: Sequence[Message] | None, raw: str | None) -> list[int]:
    if raw is not None:
        return engine.tokenize(raw, special=True, add_bos=True)
    assert messages is not None
    return engine.chat_tokens(messages)


BAR_WIDTH = 20
_BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(p: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `width` cells for a probability, to 1/8 of a cell."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_BLOCKS[part] if part else "")).ljust(width)


def show_token(text: str) -> str:
    return repr(text)[1:-1] if text.strip() != text or not text.isprintable() else text


ID_WIDTH = 9  # the id column and the gap after it
MIN_BAR = 5  # "final" over the bar


def fitted(row: int, width: int | None) -> tuple[bool, int]:
    """Whether the id column shows, and the final bar's cells, for a row of `row` cells without
    them to fit `width` (None: the whole table, as `andon inspect` prints it): the bar shrinks
    first, then the id goes, then the bar (a row is never wrapped in the app's inspector)."""
    if width is None:
        return True, BAR_WIDTH
    for with_id in (True, False):
        room = width - row - (ID_WIDTH if with_id else 0)
        if room >= MIN_BAR + 2:
            return with_id, min(BAR_WIDTH, room - 2)
    return False, 0


CELL = 7  # a probability's cell: "100.00%"
# The stages' names in a table too wide for its width (the app's panel at 80 columns): at most CELL letters
SHORT = {"penalties": "penalty", "temperature": "temp", "adaptive_p": "adapt_p", "top_n_sigma": "nsigma",
         "epsilon_cutoff": "epsilon", "eta_cutoff": "eta", "smoothing": "smooth", "mirostat": "miro"}  # fmt: skip


def headers(names: Sequence[str], row_start: int, width: int | None) -> tuple[list[str], list[int], str]:
    """The stages' headers, their columns' widths and the gap between them: the whole names, or, where
    those do not fit `width` even without the id and the bar, names of at most CELL letters in
    cells of CELL and a gap of one (the default chain with bans and adaptive-p then fits 80 columns)."""
    cols = [max(CELL, len(n)) for n in names]
    if width is None or row_start + sum(cols) + 2 * (len(cols) - 1) <= width:
        return list(names), cols, "  "
    return [SHORT.get(n, n)[:CELL] for n in names], [CELL] * len(names), " "


def filled(items: Sequence[str], width: int | None, indent: str) -> list[str]:
    """`items` joined by spaces on lines of at most `width` columns (one line where no width is
    given: a pipe keeps it whole), each line after `indent`; an item is never broken."""
    if width is None:
        return [indent + " ".join(items)]
    out: list[str] = []
    line = ""
    for item in items:
        if line and cell_len(indent + line + " " + item) > width:
            out.append(indent + line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    return [*out, indent + line] if line or not out else out


def render(result: Inspection, *, with_prompt: bool = True, width: int | None = None) -> str:
    """The candidates' table; `width`: the columns it may take (the app's panel), else all of it."""
    lines: list[str] = []
    if with_prompt:
        lines.append(f"Prompt: {len(result.prompt)} tokens")
        lines.extend(filled([f"[{i}]{show_token(t)}" for i, t, _ in result.prompt], width, "  "))
        lines.append("")
    names = [s.name for s in result.stages]
    about = (f"Next token: {len(result.shown)} candidates of {result.n_vocab}; probability before the chain "
             "(input) and after each stage (✗ removed)")  # fmt: skip
    lines.extend(filled(about.split(" "), width, ""))
    tw = max(8, *(len(show_token(result.texts[t])) for t in result.shown)) + 2
    names, cols, gap = headers(names, tw, width)
    with_id, bar_width = fitted(tw + sum(cols) + len(gap) * (len(cols) - 1), width)

    def start(token: str, ident: object) -> str:
        return f"{token:<{tw}}" + (f"{ident:>7}  " if with_id else "")

    final = "  final" if bar_width else ""
    lines.append(start("token", "id") + gap.join(f"{n:>{w}}" for n, w in zip(names, cols, strict=True)) + final)
    for t in result.shown:
        cells = []
        for s, w in zip(result.stages, cols, strict=True):
            cells.append(f"{s.probs[t] * 100:>{w - 1}.2f}%" if t in s.probs else f"{'✗':>{w}}")
        p = result.final.probs.get(t, 0.0)
        lines.append(
            start(show_token(result.texts[t]), t) + gap.join(cells) + (f"  {bar(p, bar_width)}" if bar_width else "")
        )
    lines.append("")
    lines.append("kept after each stage: " + ", ".join(f"{s.name} {s.kept}" for s in result.stages))
    if result.temperatures:
        lines.append("")
        lines.append("The same candidates under several temperatures (temperature alone, no other sampler):")
        temps = list(result.temperatures)
        tbar = BAR_WIDTH if width is None else max(0, min(BAR_WIDTH, (width - len(start("", ""))) // len(temps) - 10))
        lines.append(start("token", "id") + "  ".join(f"{'T=' + format(tt, 'g'):<{tbar + 8}}" for tt in temps))
        for t in result.shown:
            cells = [
                f"{result.temperatures[tt].get(t, 0.0) * 100:6.2f}% {bar(result.temperatures[tt].get(t, 0.0), tbar)}"
                for tt in temps
            ]
            lines.append(start(show_token(result.texts[t]), t) + "  ".join(cells))
    return "\n".join(lines)


def first_words(text: str, limit: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def as_message(draft: str) -> str | None:
    """The input box's text as the message it would send (None: empty, or a slash command)."""
    text, _ = typed_message(draft)  # as the input box sends it (a multi-line input still open: so far)
    return text if text.strip() and not text.strip().startswith("/") else None


def next_token_prompt(messages: Sequence[Message], draft: str) -> tuple[list[Message], str]:
    """The messages the next token follows, and a title that says what is inspected.

    With text in the input box: the chat, then that text as the user's next message; else the
    chat as it is (its reply is another assistant turn when it ends with one).
    """
    message = as_message(draft)
    if message is not None:
        title = f'Next token after: "{first_words(message)}" (the input box as your next message)'
        return [*messages, {"role": "user", "content": message}], title
    why = "the input box holds a command" if draft.strip() else "the input box is empty"
    if any(m["role"] != "system" for m in messages):
        return list(messages), f"Next token of a reply to the chat as it is ({why})"
    what = "only the system prompt" if messages else "no system prompt either"
    return list(messages), f"Next token of a reply to an empty chat ({what}; {why}: type a message, then F6)"


def inspect_chat(engine: EngineLike, messages: Sequence[Message], reply_tokens: Sequence[int], params: Parameters,
                 position: int | None, draft: str = "", width: int | None = None) -> str:  # fmt: skip
    """The inspector panel's text: the reply to `draft` (the input box), or token `position` of
    the last reply (`messages` then ends with that reply); its table fits `width` columns."""
    chosen = None
    reply: list[int] = []
    if position is not None and messages and messages[-1]["role"] == "assistant":
        reply = list(reply_tokens[:position])
        context = engine.chat_tokens(messages[:-1], params.think) + reply
        chosen = reply_tokens[position] if position < len(reply_tokens) else None
        title = f"Reply token {position}: the candidates when it was chosen"
    else:
        prompt, title = next_token_prompt(messages, draft)
        context = engine.chat_tokens(prompt, params.think)
    text = render(engine.inspect(context, params, top=10, reply=reply), with_prompt=False, width=width)
    if chosen is not None:
        text += f"\nchosen: {engine.token_text(chosen)!r} (id {chosen})"
    return f"{title}\n\n{text}"
