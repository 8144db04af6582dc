"""The model's tokens as bytes and text: pieces for streaming, texts for display and the samplers."""

from __future__ import annotations

import codecs
import ctypes
from typing import TYPE_CHECKING

from andon.presets.parameters import Parameters
from andon.samplers import Vocab, needs_vocab

if TYPE_CHECKING:
    from llama_cpp import Llama


class TokenTexts:
    """Tokenizing, and each token's bytes and text, cached; the full vocabulary built on demand."""

    def __init__(self, llm: Llama) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llm = llm
        self._vocab_ptr = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab: int = llm.n_vocab()
        self._pieces: dict[int, bytes] = {}
        self._vocab: Vocab | None = None

    @property
    def bos(self) -> int:
        return self.llm.token_bos()

    @property
    def eos(self) -> int:
        return self.llm.token_eos()

    @property
    def adds_bos(self) -> bool:
        """Whether the model's tokenizer starts a text with BOS."""
        return bool(self._llama_cpp.llama_vocab_get_add_bos(self._vocab_ptr))

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token as it appears in running text (no space stripping)."""
        key = token if not special else -1 - token
        cached = self._pieces.get(key)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = self._llama_cpp.llama_token_to_piece(self._vocab_ptr, token, buf, 64, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._llama_cpp.llama_token_to_piece(self._vocab_ptr, token, buf, -n, 0, special)
            cached = self._pieces[key] = buf.raw[:n]
        return cached

    def token_text(self, token: int) -> str:
        """A token's text for display, special tokens (BOS, <|im_start|>) spelled out."""
        return self.piece(token, special=True).decode("utf-8", "replace")

    def is_end_of_turn(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab_ptr, token))

    @property
    def vocab(self) -> Vocab:
        """Token texts for DRY and logit_bias, built on first use."""
        if self._vocab is None:
            texts = [self.token_text(i) for i in range(self.n_vocab)]
            self._vocab = Vocab(texts, lambda s: self.tokenize(s, special=False))
        return self._vocab

    def vocab_for(self, params: Parameters) -> Vocab | None:
        """The token texts, only when these parameters need them (DRY breakers, logit_bias by text)."""
        return self.vocab if needs_vocab(params.sampling()) else None


class TextDecoder:
    """Token bytes to text, whole UTF-8 characters only.

    A character split across tokens is held until its last byte arrives; bytes that can never
    form a character are shown as U+FFFD; a character cut off by the end of the reply is dropped.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def finish(self) -> str:
        self._decoder.reset()  # an incomplete last character is dropped, never shown as U+FFFD
        return ""
