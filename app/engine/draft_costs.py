"""What speculative decoding costs on this machine, and how often drafts turn out right.

Cost. On a CPU a batch of k tokens costs a good part of k single passes (compute-bound: on 2 cores,
17 tokens cost 6 passes with a second thread for batches, 11 with one; benchmarks/batch_cost.py), on
a GPU nearly one. `CostModel` measures the curve (`calibrate`: a few batches of sizes up to
draft_max + 1 when the engine's first n-gram draft appears and every RECALIBRATE_STEPS passes after,
about 20 to 40 passes each time) and keeps following it with the batches verified; `Speculation` then
verifies the number of drafted tokens k that gives the most tokens per unit of cost, 1 + a + ... +
a^k tokens for a batch of k + 1, where a is the acceptance measured for drafts of that match length
(kept per engine, updated also by what plain steps would have accepted), or none where plain
decoding is as fast: a draft that keeps failing costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from andon.app.engine.context import KVContext

# What a verified drafted token is expected to be worth before anything is measured: the chance a
# draft found by an n-gram of this length is right, and a batch's extra cost per token / one pass.
# A draft found by a longer match (the n-gram and the tokens before it that agree too) is more
# often right: acceptance is estimated per bucket of match length, from these priors.
PRIOR_ACCEPTANCE = {1: 0.3, 2: 0.5, 3: 0.6, 4: 0.7, 8: 0.8, 16: 0.85, 32: 0.9}
MATCH_BUCKETS = tuple(PRIOR_ACCEPTANCE)
# A batch of n tokens on a CPU costs about 0.5 + 0.5 n single passes (n >= 2); on a GPU nearly one.
PRIOR_BATCH_COST = ((2, 1.5), (17, 9.0))  # (tokens, single passes): where the fit starts
PRIOR_WEIGHT = 0.2  # each, against the measurements' 1 (10 in all, as they are forgotten)
CALIBRATION_WEIGHT = 1.0  # each size `calibrate` measured: not forgotten until the next calibration
RECALIBRATE_STEPS = 2000  # about 2% more passes for calibrating, where drafts are found
CALIBRATION_TRIES = 2
# Batches in a row that take STALL times their expected cost (other work took the cores from one of
# its threads) measure the curve and choose the threads again at once.
STALL = 3.0
STALLS_IN_A_ROW = 2
# Verification runs on fewer threads than the context's batch threads only where they pay this much
# more (the calibration's moment may be unlike the next minute, and more threads win on a quiet machine)
FEWER_THREADS_MARGIN = 1.3
# Good drafts (acceptance >= PROMISING) declined as too costly in a row before the curve is measured
# again (a stall may have made it look so); doubled each time the new curve still says no.
PROMISING = 0.8
RECHECK_DECLINED = 32
_FORGET = 0.1  # how much each new batch measurement replaces of the old ones
MARGIN = 1.05  # a draft is verified when it is expected to give 5% more tokens per second
_EMA = 0.15


def _ema(old: float | None, new: float) -> float:
    return new if old is None else old + _EMA * (new - old)


def _timing(old: float | None, seconds: float) -> float:
    if old is not None and old > 0:
        seconds = min(seconds, 4.0 * old)  # one stall of a busy machine moves the average little
    return _ema(old, seconds)


def _moments(n: float, passes: float, weight: float = 1.0) -> NDArray[np.float64]:
    return weight * np.array([1.0, n, n * n, passes, n * passes])


_PRIOR_MOMENTS = sum((_moments(n, y, PRIOR_WEIGHT) for n, y in PRIOR_BATCH_COST), np.zeros(5))


@dataclass
class CostModel:
    """What a forward pass costs on this machine: one token (seconds, a moving average), and a batch
    of n tokens in single passes, a + b * n, fitted to the batches measured, recent ones weighing
    most, and to anchors kept until the next calibration: the sizes `calibrate` measured, or before
    that two pseudo-measurements of a CPU's shape (PRIOR_BATCH_COST). Without anchors, a model that
    verifies only short drafts would measure only short batches and never learn that long ones pay."""

    single_s: float | None = None
    calibrated: bool = False
    steps: int = 0  # forward passes timed since the last calibration
    declined: int = 0  # promising drafts declined since the last batch verified or calibration
    recheck_after: int = RECHECK_DECLINED
    threads: int | None = None  # the threads a verification runs on; None: the context's batch threads
    stalls: int = 0  # batches in a row that took STALL times their expected cost
    _skip_threaded: int = 0  # calibrations left that measure only the fewest threads
    _threaded_backoff: int = 1
    measured: dict[int, float] = field(default_factory=dict)  # the last calibration's sizes -> passes
    _sums: NDArray[np.float64] = field(default_factory=lambda: np.zeros(5))  # w, wn, wn^2, wy, wny
    _anchors: NDArray[np.float64] = field(default_factory=lambda: _PRIOR_MOMENTS.copy())

    def single(self, seconds: float) -> None:
        self.single_s = _timing(self.single_s, seconds)
        self.steps += 1

    def batch(self, n: int, seconds: float) -> None:
        if self.single_s is None or self.single_s <= 0:
            return
        expected = float(self.passes(np.array([n]))[0])
        measured = seconds / self.single_s
        self.stalls = self.stalls + 1 if measured > STALL * expected else 0
        moment = _moments(n, min(measured, 2.0 * expected))  # one stall moves the fit little
        self._sums = (1.0 - _FORGET) * self._sums + moment
        self.steps += 1
        self.declined = 0

    def due(self) -> bool:
        """Whether `calibrate` should measure the curve: never measured, or RECALIBRATE_STEPS steps ago
        (a machine's load changes; where batches cost too much, nothing else would measure them)."""
        if self.stalls >= STALLS_IN_A_ROW:
            return True
        return not self.calibrated or self.steps >= RECALIBRATE_STEPS or self.declined >= self.recheck_after

    def decline(self, acceptance: float) -> None:
        """A draft was not verified, its batch expected to cost more than it gives."""
        if acceptance >= PROMISING:
            self.declined += 1

    def calibrate(self, context: KVContext, token: int, most: int) -> None:
        """Measure batches of 2 up to `most` tokens (each position's logits, as a verification asks)
        after the cached tokens, which the cache holds again afterwards (`_measure`), on each of
        the context's thread counts, and keep the curve of the one whose batches pay most: on a
        machine busy with other work, two threads that wait for each other at every step of the
        graph can make a batch take a second, one thread never does. Where more threads lose, they
        are measured again only every 2nd, 4th, ... calibration (such a batch is what costs here)."""
        base, sizes = context.n_tokens, _calibration_sizes(most)
        history = context.ids()[-max(sizes) :].tolist()
        if not self.calibrated:  # llama.cpp grows its output buffer for the first batch of this size
            _timed(context, [*history[-(sizes[-1] - 1) :], token], base, None)
        counts = context.thread_counts()
        tried = counts[::-1] if not self._skip_threaded else counts[-1:]  # the fewest threads first
        self._skip_threaded = max(0, self._skip_threaded - 1)
        singles: list[float] = []
        measured: dict[int, dict[int, float]] = {threads: {} for threads in tried}
        for _ in range(CALIBRATION_TRIES):  # each count in turn; the fastest try, as load only adds time
            for threads in tried:
                seconds, passes = _measure(context, [*history, token], base, sizes, threads)
                singles += seconds
                for n, y in passes.items():
                    measured[threads][n] = min(y, measured[threads].get(n, y))
        rates = {threads: _best_rate(passes, sizes[-1] - 1) for threads, passes in measured.items()}
        threads = counts[-1] if rates[counts[-1]] > FEWER_THREADS_MARGIN * rates.get(counts[0], 0.0) else counts[0]
        rate, passes = rates[threads], measured[threads]
        if len(tried) > 1:  # more threads lost to a busy machine: measured again later, ever less often
            self._threaded_backoff = 1 if threads == counts[0] else 2 * self._threaded_backoff
            self._skip_threaded = 0 if threads == counts[0] else self._threaded_backoff
        self.threads = None if threads == counts[0] else threads
        self.single_s = float(np.median(singles))
        self.anchor(passes)
        pays = rate > MARGIN  # for drafts that are nearly always right
        self.recheck_after = RECHECK_DECLINED if pays else min(2 * self.recheck_after, RECALIBRATE_STEPS)

    def anchor(self, passes: dict[int, float]) -> None:
        """The cost of batches of these sizes, in single passes, measured: the fit's lasting anchors."""
        self._anchors = sum((_moments(n, y, CALIBRATION_WEIGHT) for n, y in passes.items()), np.zeros(5))
        self._sums, self.calibrated, self.steps, self.declined, self.stalls = np.zeros(5), True, 0, 0, 0
        self.measured = dict(passes)

    def saved(self) -> dict[str, Any]:
        """What a later process needs to skip calibrating (app/engine/draft_cache.py keeps it): the calibration's
        measured batch costs, the threads it chose, a single pass's time, and the passes timed since,
        so that recalibration stays due every RECALIBRATE_STEPS passes across processes."""
        return {
            "measured": {str(n): y for n, y in self.measured.items()},
            "threads": self.threads,
            "single_s": self.single_s,
            "steps": self.steps,
            "recheck_after": self.recheck_after,
            "skip_threaded": self._skip_threaded,
            "threaded_backoff": self._threaded_backoff,
        }

    @classmethod
    def restored(cls, saved: Mapping[str, Any]) -> CostModel:
        """A calibrated model from `saved`; ValueError (or KeyError, TypeError) where it is not one."""
        measured = {int(n): float(y) for n, y in saved["measured"].items()}
        if len(measured) < 2 or not all(n >= 2 and 0 < y < 1e6 for n, y in measured.items()):
            raise ValueError("no calibration")
        threads, single = saved["threads"], saved["single_s"]
        costs = cls()
        costs.anchor(measured)
        costs.threads = None if threads is None else int(threads)
        costs.single_s = None if single is None else float(single)
        costs.steps = int(saved["steps"])
        costs.recheck_after = int(saved["recheck_after"])
        costs._skip_threaded, costs._threaded_backoff = int(saved["skip_threaded"]), int(saved["threaded_backoff"])
        return costs

    def passes(self, n: NDArray[np.int_]) -> NDArray[np.float64]:
        """The cost of a batch of n tokens (n >= 2), in single passes (at least one)."""
        w, sn, snn, sy, sny = self._sums + self._anchors
        slope = max(0.0, (w * sny - sn * sy) / (w * snn - sn * sn))
        return np.maximum(1.0, (sy - slope * sn) / w + slope * n)

    def best_length(self, available: int, acceptance: float) -> int:
        """How many of `available` drafted tokens to verify for the most tokens per second; 0 when
        plain decoding is expected to be as fast. Verifying k tokens, each right with probability
        `acceptance` given the ones before it, gives 1 + a + ... + a^k tokens for the cost of a
        batch of k + 1 (the chain's own cost per token is the same either way)."""
        if available <= 0:
            return 0
        rate = self._rates(available, acceptance)
        best = int(np.argmax(rate))
        return best + 1 if rate[best] > MARGIN else 0

    def best_rate(self, available: int, acceptance: float) -> float:
        """The most tokens per single pass that verifying up to `available` drafts can give."""
        return float(self._rates(available, acceptance).max()) if available > 0 else 1.0

    def _rates(self, available: int, acceptance: float) -> NDArray[np.float64]:
        k = np.arange(1, available + 1)
        gained = np.cumsum(acceptance ** k.astype(np.float64)) + 1.0
        return gained / self.passes(k + 1)


def _calibration_sizes(most: int) -> tuple[int, ...]:
    """Batch sizes for the line's two ends: 2 and most."""
    return (2, max(3, most))


def _best_rate(passes: dict[int, float], available: int) -> float:
    """What a curve through these measured batch costs gives at best for drafts nearly always right."""
    trial = CostModel()
    trial.anchor(passes)
    return trial.best_rate(available, 0.95)


def _measure(
    context: KVContext, tokens: list[int], base: int, sizes: tuple[int, ...], threads: int
) -> tuple[list[float], dict[int, float]]:
    """Single passes (seconds) and batches of the last n `tokens` for each n in `sizes` (in single
    passes, each against the single pass just before it) on `threads` threads, up to the first
    batch that costs more passes than it has tokens (a larger one would not pay either); a line
    needs two sizes, so a larger batch is then taken to cost as much per token."""
    passes: dict[int, float] = {}
    singles: list[float] = []
    for n in sizes:
        singles.append(_timed(context, tokens[-1:], base, 0))
        passes[n] = _timed(context, tokens[-n:], base, threads) / singles[-1]
        if passes[n] > n:
            break
    if len(passes) == 1:
        passes[sizes[-1]] = passes[sizes[0]] * sizes[-1] / sizes[0]
    return singles, passes


def _timed(context: KVContext, tokens: list[int], base: int, threads: int | None) -> float:
    """Seconds to evaluate `tokens` after the first `base` cached ones, which are all that stay:
    one token as a plain step does (threads 0), else a batch with every position's logits."""
    started = time.perf_counter()
    if threads == 0:
        context.append(tokens)
        context.logits()
    else:
        context.append_all_logits(tokens, threads)
    seconds = time.perf_counter() - started
    context.truncate(base)
    return seconds


@dataclass
class Acceptance:
    """How often drafted tokens turn out right, per bucket of match length: moving averages."""

    rates: dict[int, float] = field(default_factory=lambda: dict(PRIOR_ACCEPTANCE))

    def rate(self, key: int) -> float:
        return self.rates.get(key, 0.5)

    def observe(self, key: int, right: bool) -> None:
        self.rates[key] = _ema(self.rate(key), 1.0 if right else 0.0)

    def saved(self) -> dict[str, float]:
        return {str(k): v for k, v in self.rates.items()}

    @classmethod
    def restored(cls, saved: Mapping[str, Any]) -> Acceptance:
        rates = {int(k): float(v) for k, v in saved.items()}
        if not all(0.0 <= v <= 1.0 for v in rates.values()):
            raise ValueError("not a rate")
        return cls({**PRIOR_ACCEPTANCE, **rates})
