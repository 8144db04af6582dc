"""llama.cpp's grammar engine as a token constraint: which tokens a GBNF grammar allows next.

Everything goes through llama-cpp-python's low-level bindings: `llama_sampler_init_grammar`
parses the GBNF, `llama_sampler_apply` marks the tokens the grammar rejects with -inf and
`llama_sampler_accept` advances it. Nothing here parses GBNF itself.

llama.cpp reports a grammar's parse error with fprintf on the process's stderr, which in the chat
app is the screen. So a grammar a person wrote is first parsed in a short-lived child process
(`check_grammar`), whose stderr says where it is wrong; the app's own stderr never sees it.
Before that, the grammar's size and nesting are measured (app/engine/gbnf.py) against limits llama.cpp
reads within seconds without crashing, and the child is given CHECK_SECONDS; after it, a grammar
no text can match, or only empty text, is refused by name (llama.cpp would accept it).
"""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import sys
from functools import lru_cache

import numpy as np
from andon.app.engine import gbnf, llama_log
from numpy.typing import NDArray

# llama_token_data as numpy sees it: a candidate array is filled and read back without a loop
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_PARSE_PREFIX = "error parsing grammar: "
# What llama.cpp reads in a few seconds without crashing: 300,000 alternatives take it a minute,
# 20,000 nested parentheses or a 100,000-rule chain crash its recursive parser.
MAX_GRAMMAR_CHARS = 200_000
MAX_NESTING = 1000  # parentheses inside each other, or rules that each begin with the next
CHECK_SECONDS = 10  # llama.cpp's reading of a grammar (nested optional rules grow it exponentially)


class GrammarError(ValueError):
    """A grammar, a schema or a format that cannot constrain a reply; the message says why."""


class GrammarConstraint:
    """One grammar over one model's vocabulary, advanced token by token. Not thread-safe.

    `allows` checks one token (llama.cpp's rejection sampling: the chain picks, the grammar
    checks only that pick); `mask` marks every rejected candidate -inf (the fallback);
    `accept` advances the grammar past a token it allows. `accepted` and `masks` count tokens
    and fallbacks, for the benchmark.
    """

    def __init__(self, vocab_ptr: object, text: str, root: str = "root") -> None:
        import llama_cpp

        self._llama = llama_cpp
        self.text = text
        self.root = root
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab_ptr, text.encode("utf-8"), root.encode("utf-8"))
        if not self._sampler:
            detail = llama_log.last_error() or "llama.cpp could not build it"
            raise GrammarError(f"grammar: {detail}")
        self._eog = _end_of_generation_token(llama_cpp, vocab_ptr)
        self._one = np.zeros(1, TOKEN_DATA)
        self._one_array = self._array_of(self._one)
        self._buffer = np.zeros(0, TOKEN_DATA)
        self._ids: NDArray[np.intc] = np.zeros(0, np.intc)
        self.accepted = 0
        self.masks = 0

    def _array_of(self, data: NDArray[np.void]) -> object:
        llama = self._llama
        pointer = data.ctypes.data_as(llama.llama_token_data_p)
        return llama.llama_token_data_array(pointer, data.shape[0], -1, False)

    def _apply(self, array: object) -> None:
        if not self._sampler:
            raise RuntimeError("the grammar was closed")
        self._llama.llama_sampler_apply(self._sampler, ctypes.byref(array))  # type: ignore[arg-type]

    def allows(self, token: int) -> bool:
        """Whether the grammar accepts `token` next (end of generation: where it is complete)."""
        self._one["id"] = token
        self._one["logit"] = 0.0
        self._apply(self._one_array)
        return bool(np.isfinite(self._one["logit"][0]))

    def is_complete(self) -> bool:
        """Whether what was accepted so far is a whole sentence of the grammar (it may go on)."""
        return self._eog >= 0 and self.allows(self._eog)

    def mask(self, logits: NDArray[np.float32], ids: NDArray[np.intc] | None = None) -> NDArray[np.float32]:
        """A copy of `logits` with every token the grammar rejects next set to -inf.

        `logits` is for the whole vocabulary, or for the candidates `ids` when given.
        """
        if ids is None:
            if self._ids.shape[0] != logits.shape[0]:
                self._ids = np.arange(logits.shape[0], dtype=np.intc)
            ids = self._ids
        self.masks += 1
        n = ids.shape[0]
        if self._buffer.shape[0] < n:
            self._buffer = np.zeros(n, TOKEN_DATA)
        data = self._buffer[:n]
        data["id"] = ids
        data["logit"] = logits
        self._apply(self._array_of(data))
        return data["logit"].copy()

    def accept(self, token: int) -> None:
        """Advance past `token`; llama.cpp aborts the process on a rejected token, so it is checked."""
        if not self.allows(token):
            raise ValueError(f"token {token} is not allowed by the grammar here")
        self._llama.llama_sampler_accept(self._sampler, token)
        self.accepted += 1

    def reset(self) -> None:
        """Back to the start of the grammar, as a new reply needs."""
        if self._sampler:
            self._llama.llama_sampler_reset(self._sampler)
        self.accepted = self.masks = 0

    def close(self) -> None:
        if self._sampler:
            self._llama.llama_sampler_free(self._sampler)
            self._sampler = None

    def __enter__(self) -> GrammarConstraint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_sampler", None):
            self.close()


def _end_of_generation_token(llama_cpp, vocab_ptr: object) -> int:
    for token in (llama_cpp.llama_vocab_eos(vocab_ptr), llama_cpp.llama_vocab_eot(vocab_ptr)):
        if token >= 0 and llama_cpp.llama_vocab_is_eog(vocab_ptr, token):
            return int(token)
    return -1


# --- where a grammar is wrong ------------------------------------------------------------------


@lru_cache(maxsize=64)
def check_grammar(text: str, root: str = "root") -> None:
    """Raise GrammarError naming what is wrong with `text` (where, or which limit), or return.

    llama.cpp parses it in a child process (see the module's docstring). A grammar that names
    tokens (`<[id]>`, `<|name|>`) needs the model's vocabulary, which the child does not load;
    it is checked when the model builds it.
    """
    if not text.strip():
        raise GrammarError("grammar: the grammar is empty")
    shape = _check_size(text)
    _check_with_llama_cpp(text, root)
    if shape is not None:
        _check_sentences(shape, root)


def _check_size(text: str) -> gbnf.Grammar | None:
    """Refuse a grammar past the limits; its rules as andon reads them (None: llama.cpp will say)."""
    if len(text) > MAX_GRAMMAR_CHARS:
        raise GrammarError(f"grammar: too large: {len(text):,} characters (at most {MAX_GRAMMAR_CHARS:,})")
    depth = gbnf.nesting_depth(text)
    if depth > MAX_NESTING:
        raise GrammarError(
            f"grammar: nesting too deep: {depth:,} parentheses inside each other (at most {MAX_NESTING:,})"
        )
    try:
        shape = gbnf.read(text)
    except gbnf.BadCount as exc:
        raise GrammarError(f"grammar: the count {exc} goes down (write {{m,n}} with m <= n)") from None
    chain = gbnf.leading_depth(shape) if shape is not None else 0
    if chain > MAX_NESTING:
        raise GrammarError(
            f"grammar: nesting too deep: a chain of {chain:,} rules that each begin with the next "
            f"(at most {MAX_NESTING:,})"
        )
    return shape


def _check_with_llama_cpp(text: str, root: str) -> None:
    """llama.cpp's parse in a child process, within CHECK_SECONDS; its error as one line."""
    try:
        run = subprocess.run(
            [sys.executable, "-m", "andon.app.engine.grammar", root],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=CHECK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GrammarError(
            f"grammar: too complex: llama.cpp did not finish reading it in {CHECK_SECONDS} s (the limit); "
            "fewer alternatives, or fewer optional rules inside each other, read faster"
        ) from None
    if run.returncode == 0:
        return
    log = run.stderr.decode("utf-8", "replace")
    if run.returncode < 0:
        name = signal.Signals(-run.returncode).name if -run.returncode in signal.valid_signals() else -run.returncode
        raise GrammarError(f"grammar: llama.cpp crashed reading it ({name}); it may nest too deep or be too large")
    if run.returncode != 3:
        last = log.strip().splitlines()[-1:]
        raise GrammarError(f"grammar: could not be checked ({last[0] if last else run.returncode})")
    message = explain(log, text, root)
    if message is not None:
        raise GrammarError(message)


def _check_sentences(shape: gbnf.Grammar, root: str) -> None:
    """Refuse a grammar llama.cpp accepts although no reply could be complete, or any but empty."""
    dead = gbnf.dead_end(shape, root)
    if dead is not None:
        raise GrammarError("grammar: " + dead_end_words(dead, root))
    if gbnf.only_empty(shape, root):
        raise GrammarError(f"grammar: rule {root!r} matches only empty text, so every reply would be empty")


def dead_end_words(dead: gbnf.DeadEnd, root: str = "root") -> str:
    """Why no text completes a rule, as the rest of a one-line message."""
    if dead.impossible and not dead.needs:
        why = "it needs a character no token gives: a NUL, or a [...] that matches nothing"
    elif dead.needs == (dead.rule,):
        why = f"every alternative needs {dead.rule!r} again"
    else:
        why = "every alternative needs " + " or ".join(repr(n) for n in dead.needs) + ", which never end"
    if dead.part:
        return f"a part of rule {dead.rule!r} never ends ({why}): a reply that enters it could not be complete"
    if dead.rule == root:
        return f"no text can match it: rule {root!r} never ends: {why}"
    return f"rule {dead.rule!r} never ends ({why}): a reply that enters it could not be complete"


def explain(log: str, text: str, root: str = "root") -> str | None:
    """One line from llama.cpp's log of a failed parse; None where only the vocabulary was missing."""
    start = log.find(_PARSE_PREFIX)
    if start >= 0:
        what = log[start + len(_PARSE_PREFIX) :]
        # llama.cpp prints the reason, a blank line, then the whole grammar
        end = what.rfind("\n\n" + text)
        what = (what[:end] if end >= 0 else what.split("\n\n", 1)[0]).strip("\n")
        if what.startswith("no vocab to parse token"):
            return None
        undefined = re.fullmatch(r"Undefined rule identifier '(.*)'", what)
        if undefined:
            return f"grammar: rule {undefined.group(1)!r} is used but never defined"
        if what == "unexpected end of input":
            return "grammar: unexpected end of input (a string, [...] or (...) is not closed)"
        return "grammar: " + _locate(what, text)
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "failed to parse grammar" not in ln]
    if any("does not contain a" in ln for ln in lines):
        return f"grammar: there is no rule named {root!r}; the reply starts at `{root} ::= ...`"
    if any("left recursion" in ln for ln in lines):
        return (
            'grammar: left recursion is not supported (a rule that starts with itself: a ::= a "x"; write a ::= "x"+)'
        )
    return "grammar: " + (lines[0].split(": ", 1)[-1] if lines else "llama.cpp could not parse it")


def _locate(what: str, text: str) -> str:
    """`expecting name at <rest of the grammar>` -> `expecting name at line 2, column 7 (rule x): <rest>`."""
    reason, sep, rest = what.partition(" at ")
    if not sep or not text.endswith(rest):
        return what
    offset = len(text) - len(rest)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    rules = list(re.finditer(r"^[ \t]*([A-Za-z0-9_-]+)[ \t]*::=", text[:offset], re.MULTILINE))
    rule = f" in rule {rules[-1].group(1)}" if rules else ""
    snippet = rest.split("\n", 1)[0][:30]
    return f"{reason} at line {line}, column {column}{rule}: {snippet!r}" if snippet else f"{reason} at the end{rule}"


def _check_main() -> int:
    """The child of check_grammar: parse standard input as GBNF; exit 3 when llama.cpp refuses it."""
    import llama_cpp

    root = sys.argv[1] if len(sys.argv) > 1 else "root"
    sampler = llama_cpp.llama_sampler_init_grammar(None, sys.stdin.buffer.read(), root.encode("utf-8"))
    if not sampler:
        return 3
    llama_cpp.llama_sampler_free(sampler)
    return 0


if __name__ == "__main__":
    sys.exit(_check_main())
