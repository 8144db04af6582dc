"""llama.cpp's own samplers, driven through llama-cpp-python's low-level bindings.

Builds the native sampler for the same parameters as andon's chain, feeds it the same history
with `llama_sampler_accept`, applies it to the same logits with `llama_sampler_apply`, and reads
back the candidates it left.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

import llama_cpp
import numpy as np
from andon.samplers import is_active, resolve

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.float32), ("p", np.float32)], align=True)
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class NativeChain:
    """A llama.cpp sampler chain for a mapping of andon's parameters, with andon's window semantics."""

    def __init__(
        self, params: Mapping[str, Any], n_vocab: int, *, history_len: int, vocab_ptr: Any = None, seed: int = 1234
    ) -> None:
        p = resolve(params)
        self.n_vocab = n_vocab
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        self._keep: list[Any] = []

        def window(n: int) -> int:  # andon's -1 is "whole context", llama.cpp's is "off"
            return history_len if n < 0 else n

        if p["logit_bias"]:
            items = list(p["logit_bias"].items())
            arr = (llama_cpp.llama_logit_bias * len(items))(
                *[llama_cpp.llama_logit_bias(int(t), float(b)) for t, b in items]
            )
            self._keep.append(arr)
            self._add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(items), arr))
        temp = llama_cpp.llama_sampler_init_temp_ext(p["temperature"], p["dynatemp_range"], p["dynatemp_exponent"])
        if p["mirostat"]:
            self._add(temp)
            if p["mirostat"] == 1:
                self._add(
                    llama_cpp.llama_sampler_init_mirostat(n_vocab, seed, p["mirostat_tau"], p["mirostat_eta"], 100)
                )
            else:
                self._add(llama_cpp.llama_sampler_init_mirostat_v2(seed, p["mirostat_tau"], p["mirostat_eta"]))
            return
        mk = p["min_keep"]
        for name in p["samplers"]:
            if name == "penalties":
                self._add(
                    llama_cpp.llama_sampler_init_penalties(
                        n_vocab,
                        window(p["repeat_last_n"]),
                        p["repeat_penalty"],
                        p["frequency_penalty"],
                        p["presence_penalty"],
                    )
                )
            elif name == "dry":
                if p["dry_multiplier"] == 0.0:
                    continue
                breakers = [b.encode() for b in p["dry_sequence_breakers"]]
                arr = (ctypes.c_char_p * len(breakers))(*breakers)
                self._keep.append(arr)
                self._add(
                    llama_cpp.llama_sampler_init_dry(
                        vocab_ptr,
                        p["dry_multiplier"],
                        p["dry_base"],
                        p["dry_allowed_length"],
                        window(p["dry_penalty_last_n"]),
                        arr,
                        len(breakers),
                    )
                )
            elif name == "top_n_sigma":
                self._add(llama_cpp.llama_sampler_init_top_n_sigma(p["top_n_sigma"]))
            elif name == "top_k":
                self._add(llama_cpp.llama_sampler_init_top_k(p["top_k"]))
            elif name == "typical_p":
                self._add(llama_cpp.llama_sampler_init_typical(p["typical_p"], mk))
            elif name == "top_p":
                self._add(llama_cpp.llama_sampler_init_top_p(p["top_p"], mk))
            elif name == "min_p":
                self._add(llama_cpp.llama_sampler_init_min_p(p["min_p"], mk))
            elif name == "xtc":
                self._add(llama_cpp.llama_sampler_init_xtc(p["xtc_probability"], p["xtc_threshold"], mk, seed))
            elif name == "temperature":
                self._add(temp)
            elif name == "adaptive_p":
                continue  # it picks the token: llama.cpp adds it at the chain's end, below
            elif is_active(name, p):
                raise ValueError(f"llama.cpp has no {name} sampler")
        if "adaptive_p" in p["samplers"] and is_active("adaptive_p", p):
            self._add(llama_cpp.llama_sampler_init_adaptive_p(p["adaptive_target"], p["adaptive_decay"], seed))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def accept(self, tokens: Sequence[int]) -> None:
        for t in tokens:
            llama_cpp.llama_sampler_accept(self.chain, int(t))

    def apply(self, logits: np.ndarray) -> tuple[np.ndarray, int]:
        """Full-vocabulary logits (-inf where removed) and the token the chain selected (-1)."""
        data = np.zeros(logits.shape[0], _TOKEN_DATA)
        data["id"] = np.arange(logits.shape[0])
        data["logit"] = logits
        arr = llama_cpp.llama_token_data_array(
            data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)), logits.shape[0], -1, False
        )
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        size = int(arr.size)
        start = (ctypes.addressof(arr.data.contents) - data.ctypes.data) // _TOKEN_DATA.itemsize
        kept = data[start : start + size]
        out = np.full(logits.shape[0], -np.inf, np.float32)
        out[kept["id"]] = kept["logit"]
        selected = int(kept["id"][arr.selected]) if arr.selected >= 0 else -1
        return out, selected

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.chain)


def distribution(logits: np.ndarray) -> np.ndarray:
    finite = np.isfinite(logits)
    p = np.zeros(logits.shape[0], np.float64)
    x = logits[finite].astype(np.float64)
    e = np.exp(x - x.max())
    p[finite] = e / e.sum()
    return p
