"""llama.cpp's model load progress (llama_model_params.progress_callback) for a Python callable.

llama-cpp-python's `Llama(...)` takes no progress callback (abetlen/llama-cpp-python#2340 would add
one); it builds its model parameters with `llama_model_default_params()`. andon wraps that function
once: while a load runs inside `reporting(...)`, the parameters it returns carry llama.cpp's
progress callback; otherwise they are llama.cpp's defaults, unchanged. The model may be loaded on
another thread than the caller's (with RPC servers, their runner thread loads it), so the callback
is the process's, and loads that report progress take turns. The callback runs on the loading
thread, between llama.cpp's reads of the weights, with the fraction loaded (0 to 1).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

Progress = Callable[[float], None]

_loading = threading.Lock()  # one load reports progress at a time
_install_lock = threading.Lock()
_callback: list[Any] = []  # the ctypes callback of the load reporting now, kept alive while it runs


@contextmanager
def reporting(report: Progress | None) -> Iterator[None]:
    """While inside, a llama.cpp model being loaded calls `report(fraction)` as it loads."""
    if report is None:
        yield
        return
    import llama_cpp.llama_cpp as low

    _install(low)

    def progress(fraction: float, _user_data: Any) -> bool:
        with suppress(Exception):  # a progress line must never fail a load (nor print from inside C)
            report(float(fraction))
        return True  # go on loading

    with _loading:
        _callback.append(low.llama_progress_callback(progress))
        try:
            yield
        finally:
            _callback.clear()


def _install(low: Any) -> None:
    with _install_lock:
        if getattr(low.llama_model_default_params, "andon_progress", False):
            return
        original = low.llama_model_default_params

        def default_params() -> Any:
            params = original()
            if _callback:
                params.progress_callback = _callback[0]
            return params

        default_params.andon_progress = True  # type: ignore[attr-defined]
        low.llama_model_default_params = default_params
