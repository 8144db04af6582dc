"""Switching models with the real engine (issue 12): llama.cpp's load progress, an Ollama model in
a store built in tmp_path around the embedded GGUF switched to from the app, and the num_ctx
warning of `andon ask`."""

from __future__ import annotations

from dataclasses import replace

import pytest
from andon.app.chat.history import History
from andon.app.engine.engine import Engine, ModelOptions
from andon.app.models import sources as model_sources
from andon.app.tui.app import AndonApp
from andon.app.tui.widgets.message_box import ChatInput, NoticeLine, StatusBar
from andon.presets.store import PresetStore

from tests.app.model_stores import add_ollama_model, sha256_of
from tests.app.test_cli import andon
from tests.app.test_model_switch import ready

pytestmark = pytest.mark.model


def test_a_load_reports_llama_cpps_progress_from_0_to_1(model_path):
    seen: list[float] = []
    engine = Engine(ModelOptions(model_path, num_ctx=256, progress=seen.append))
    try:
        assert len(seen) > 10 and seen[0] == 0.0 and seen[-1] == 1.0
        assert seen == sorted(seen)  # it only moves forward
    finally:
        engine.close()
    quiet = Engine(ModelOptions(model_path, num_ctx=256))  # a load without a callback is llama.cpp's as before
    quiet.close()


async def test_an_ollama_model_is_switched_to_from_the_app_and_replies(tmp_path, monkeypatch, model_path):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(model_sources, "OLLAMA_SYSTEM_STORE", tmp_path / "none")
    add_ollama_model(tmp_path / "ollama", "registry.ollama.ai/library/smollm2:135m", model_path, sha256_of(model_path),
                     {"temperature": 0.0, "num_predict": 12}, "Answer in one short sentence.")  # fmt: skip
    progress: list[float] = []

    def factory(options: ModelOptions) -> Engine:
        report = options.progress

        def both(fraction: float) -> None:
            progress.append(fraction)
            if report is not None:
                report(fraction)

        return Engine(replace(options, progress=both))

    app = AndonApp(factory, model_path, history=History(tmp_path / "h.sqlite3"), store=PresetStore(tmp_path / "p"))
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        progress.clear()
        app.query_one(ChatInput).text = "/model smollm2:135m"
        await pilot.press("enter")
        await ready(pilot)
        await ready(pilot)
        assert progress and progress[-1] == 1.0
        assert "smollm2:135m" in str(app.query_one(StatusBar).render())
        assert any(str(n.render()).startswith("Model smollm2:135m loaded") for n in app.query(NoticeLine))
        app.query_one(ChatInput).text = "What colour is the sky?"
        await pilot.press("enter")
        await ready(pilot)
        await ready(pilot)
        reply = app.session.messages[-1]
        assert reply.role == "assistant" and reply.status == "complete" and reply.content.strip()
        assert reply.stats["completion_tokens"] <= 12  # the model's own num_predict
        assert app.session.chat.model == "smollm2:135m"


def test_ask_warns_once_on_stderr_when_num_ctx_is_past_the_trained_context():
    past = andon("ask", "Hi", "--set", "num_ctx=9000", "--set", "num_predict=2")
    assert past.returncode == 0, past.stderr
    warnings = [line for line in past.stderr.splitlines() if "num_ctx" in line]
    assert warnings == [
        "andon: warning: num_ctx 9000 is above the 8192 tokens SmolLM2-135M-Instruct.Q4_1 was trained on: it is "
        "allowed, but past 8192 tokens of conversation its replies may lose track or degrade (set num_ctx 8192 or "
        "less to stay within it)"
    ]
    within = andon("ask", "Hi", "--set", "num_ctx=8192", "--set", "num_predict=2")
    assert within.returncode == 0 and "num_ctx" not in within.stderr
