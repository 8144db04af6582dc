"""What speculative decoding measured is kept for the next process (app/engine/draft_cache.py): a fresh
`andon ask --set draft=ngram` does not calibrate again on the same model and machine, and measures
anew when the model file or the settings that change a batch's cost change."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from andon.app.engine.draft_cache import FILE, DraftCache
from andon.app.engine.draft_costs import Acceptance, CostModel
from andon.app.engine.loading import ModelOptions
from andon.presets.paths import cache_dir

from tests.sample_code import EXCERPT, rewrite


def calibrated() -> CostModel:
    costs = CostModel(single_s=0.012, threads=1)
    costs.anchor({2: 1.4, 9: 4.1})
    costs.single(0.013)
    costs.batch(5, 0.03)
    return costs


def test_saved_costs_give_the_same_curve_threads_and_steps():
    costs = calibrated()
    again = CostModel.restored(json.loads(json.dumps(costs.saved())))
    sizes = np.array([2, 5, 9, 17])
    # the batches measured after calibrating are not kept, only the calibration's anchors
    assert np.allclose(again.passes(sizes), CostModel.restored(costs.saved()).passes(sizes))
    assert again.measured == {2: 1.4, 9: 4.1} and again.threads == 1 and again.calibrated
    assert again.steps == costs.steps == 2  # recalibration stays due every RECALIBRATE_STEPS passes
    assert not again.due()


def test_acceptance_is_kept_per_match_length():
    acceptance = Acceptance()
    for _ in range(20):
        acceptance.observe(8, True)
    again = Acceptance.restored(json.loads(json.dumps(acceptance.saved())))
    assert again.rate(8) == pytest.approx(acceptance.rate(8)) and again.rate(8) > 0.9


@pytest.fixture
def options(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    return ModelOptions(model)


def test_a_later_process_finds_what_was_measured(options):
    DraftCache.for_model(options).save(calibrated(), Acceptance())
    kept = DraftCache.for_model(options).load()
    assert kept is not None and kept[0].measured == {2: 1.4, 9: 4.1}


def test_nothing_is_kept_before_a_calibration(options):
    DraftCache.for_model(options).save(CostModel(), Acceptance())
    assert not (cache_dir() / FILE).exists()


def test_another_model_file_or_other_threads_measure_anew(options):
    DraftCache.for_model(options).save(calibrated(), Acceptance())
    assert DraftCache.for_model(ModelOptions(options.path, num_thread=1)).load() is None
    assert DraftCache.for_model(ModelOptions(options.path, num_gpu=0)).load() is None
    options.path.write_bytes(b"GGUF" + bytes(61))  # the model file replaced
    assert DraftCache.for_model(options).load() is None


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"x": {"costs": 3}}', "\x00\xff"])
def test_a_damaged_cache_is_a_cold_start_and_is_written_anew(options, text):
    cache_dir().mkdir(parents=True)
    (cache_dir() / FILE).write_text(text, encoding="latin-1")
    cache = DraftCache.for_model(options)
    assert cache.load() is None
    cache.save(calibrated(), Acceptance())
    assert cache.load() is not None


def test_a_cache_folder_that_cannot_be_written_is_ignored(options, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    DraftCache.for_model(options).save(calibrated(), Acceptance())  # no exception
    assert DraftCache.for_model(options).load() is None


@pytest.mark.model
def test_a_new_engine_on_the_same_model_starts_from_what_was_measured(engine):
    """What one engine measured is what the next one (a later process: here a new Speculator on the
    same model and settings) starts from, calibrated, before any pass of its own."""
    from andon.app.engine.speculative import Speculator
    from andon.presets import Parameters
    from andon.presets.store import PresetStore

    params = Parameters.of({"draft": "ngram", "temperature": 0, "num_predict": 48},
                           base=PresetStore().load("code").parameters)  # fmt: skip
    engine.speculator.costs = CostModel()  # measured anew in this test
    for _ in engine.stream(rewrite(EXCERPT), params):
        pass
    measured = engine.speculator.costs
    assert measured.calibrated and (cache_dir() / FILE).exists()
    later = Speculator(engine.options, engine.texts, engine.model_name, engine.n_ctx)
    assert later.for_reply(params) is not None
    assert later.costs.calibrated and not later.costs.due()
    assert later.costs.measured == measured.measured and later.costs.threads == measured.threads
    assert later.acceptance.rates == pytest.approx(engine.speculator.acceptance.rates)


@pytest.mark.model
def test_andon_ask_keeps_what_it_measured_in_the_cache_folder(tmp_path):
    prompt = rewrite(EXCERPT)[-1]["content"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "andon", "ask", prompt, "--preset", "code", "--json",
         "--set", "draft=ngram", "--set", "temperature=0", "--set", "num_predict=48"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads((tmp_path / "cache" / "andon" / FILE).read_text()).values()
    assert len(entry["costs"]["measured"]) == 2 and entry["costs"]["steps"] > 0
