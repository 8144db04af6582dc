"""What speculative decoding measured, kept for the next process on the same model and machine.

Calibrating (draft_costs.py: a few batches of each size, on each thread count) costs 20 to 40
forward passes, and the acceptance of n-gram drafts is learned over replies. An `andon ask` is a
process of its own: measuring again in each one made `--set draft=ngram` a loss on short replies.
So the measurements are kept in andon's cache folder (platformdirs: XDG_CACHE_HOME moves it), one
entry per key: the model file (path, size, time modified), the machine (processor, cores,
architecture), llama.cpp's build and the settings that change what a batch costs (threads, GPU
layers, RPC servers, flash attention). A change of any of them is another key, measured anew.
The file is a cache: one that cannot be read or written is ignored (a cold start, as before).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from andon.app.engine.draft_costs import Acceptance, CostModel
from andon.presets.paths import cache_dir

if TYPE_CHECKING:
    from andon.app.engine.loading import ModelOptions

FILE = "draft_costs.json"
KEEP = 32  # entries kept, the most recently saved


@dataclass(frozen=True)
class DraftCache:
    """The cache entry of one model on one machine with one set of settings."""

    key: str

    @classmethod
    def for_model(cls, options: ModelOptions) -> DraftCache:
        return cls(_key(options))

    def load(self) -> tuple[CostModel, Acceptance] | None:
        """The costs and acceptance saved under this key; None where there are none (or unreadable)."""
        entry = _read().get(self.key)
        try:
            return CostModel.restored(entry["costs"]), Acceptance.restored(entry["acceptance"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def save(self, costs: CostModel, acceptance: Acceptance) -> None:
        """Keep what was measured (once `costs` has a calibration); a failure to write is ignored."""
        if not costs.calibrated:
            return
        entries = _read()
        entries.pop(self.key, None)
        entries[self.key] = {"costs": costs.saved(), "acceptance": acceptance.saved()}
        _write(dict(list(entries.items())[-KEEP:]))


def _key(options: ModelOptions) -> str:
    import llama_cpp

    path = Path(options.path).resolve()
    try:
        stat = path.stat()
        model: list[Any] = [str(path), stat.st_size, stat.st_mtime_ns]
    except OSError:
        model = [str(path)]
    machine = [_processor(), os.cpu_count(), platform.machine(), llama_cpp.__version__]
    settings = [options.num_thread, options.num_gpu, list(options.rpc), options.flash_attn]
    text = json.dumps([model, machine, settings])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _read() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(entries: dict[str, Any]) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".draft_costs.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entries, f)
            os.replace(tmp, folder / FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a cache: the next process measures again
