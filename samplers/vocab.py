"""The text of each token, for the samplers that reason about text (DRY, logit_bias by text).

The chain knows nothing of llama.cpp: the app wraps its model's vocabulary in this class and
passes a `tokenize` function; tests pass plain lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cache

Tokenize = Callable[[str], list[int]]

# llama.cpp's limits when it turns DRY sequence breakers into token sequences
_MAX_BREAKER_CHARS = 40
_MAX_TAIL_TOKENS = 20


class Vocab:
    def __init__(self, texts: Sequence[str], tokenize: Tokenize | None = None) -> None:
        self.texts = list(texts)
        self._tokenize = tokenize
        self.breaker_sequences = cache(self._breaker_sequences)

    @property
    def size(self) -> int:
        return len(self.texts)

    def tokenize(self, text: str) -> list[int]:
        if self._tokenize is not None:
            return list(self._tokenize(text))
        return self._greedy(text)

    def _greedy(self, text: str) -> list[int]:
        """Longest-match tokenization over the token texts, for vocabularies without a tokenizer."""
        lookup = {t: i for i, t in enumerate(self.texts) if t}
        longest = max((len(t) for t in lookup), default=1)
        out: list[int] = []
        pos = 0
        while pos < len(text):
            for width in range(min(longest, len(text) - pos), 0, -1):
                token = lookup.get(text[pos : pos + width])
                if token is not None:
                    out.append(token)
                    pos += width
                    break
            else:
                pos += 1  # a character no token spells is skipped
        return out

    def _breaker_sequences(self, breakers: tuple[str, ...]) -> dict[int, list[tuple[int, ...]]]:
        """DRY restart sequences, as llama.cpp's get_overlapping_token_sequences builds them.

        Maps a head token to the token tails that complete a breaker after it; a token whose text
        contains a breaker maps to the empty tail.
        """
        heads: dict[int, list[tuple[int, ...]]] = {}
        for breaker in _usable(breakers):
            for token, word in enumerate(self.texts):
                if breaker in word:
                    _add(heads, token, ())
                    continue
                pos = word.find(breaker[0])
                while pos != -1:
                    matched = min(len(breaker), len(word) - pos)
                    if word[pos : pos + matched] == breaker[:matched]:
                        tail = tuple(self.tokenize(breaker[matched:])[:_MAX_TAIL_TOKENS])
                        _add(heads, token, tail)
                    pos = word.find(breaker[0], pos + 1)
        return heads


def _usable(breakers: Iterable[str]) -> list[str]:
    return [b[:_MAX_BREAKER_CHARS] for b in breakers if b]


def _add(heads: dict[int, list[tuple[int, ...]]], token: int, tail: tuple[int, ...]) -> None:
    tails = heads.setdefault(token, [])
    if tail not in tails:
        tails.append(tail)
