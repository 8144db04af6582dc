"""Pure numpy sampler chain: logits in, truncated and tempered logits out.

Knows nothing of llama.cpp or the UI. `build_chain(params)` returns a `Chain`, which is a
llama-cpp-python logits processor.
"""

from andon.samplers.candidates import Candidates, softmax
from andon.samplers.chain import Chain, LogitsProcessor, Observer, build_chain, is_active, needs_vocab
from andon.samplers.params import (
    DEFAULT_ORDER,
    SAMPLER_NAMES,
    SAMPLING_SPECS,
    SPECS,
    ParameterError,
    ParamSpec,
    resolve,
)
from andon.samplers.registry import parameter_groups
from andon.samplers.vocab import Vocab

__all__ = [
    "DEFAULT_ORDER",
    "SAMPLER_NAMES",
    "SAMPLING_SPECS",
    "SPECS",
    "Candidates",
    "Chain",
    "LogitsProcessor",
    "Observer",
    "ParamSpec",
    "ParameterError",
    "Vocab",
    "build_chain",
    "is_active",
    "needs_vocab",
    "parameter_groups",
    "resolve",
    "softmax",
]
