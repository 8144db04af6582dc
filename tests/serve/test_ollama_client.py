"""`andon serve` through the official `ollama` package, unchanged: chat, generate, streams, formats,
options (andon's own too), errors, the KV cache of a resent chat, two clients at once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import ollama
import pytest
from andon.app.serve.http import ServeServer

from tests.serve.conftest import GREEDY, MODEL

pytestmark = pytest.mark.model
HI = [{"role": "user", "content": "Say hello to Ada."}]


@pytest.fixture(scope="module")
def client(server: ServeServer) -> ollama.Client:
    return ollama.Client(host=server.url)


def test_chat_streamed_is_the_chat_answered_whole(client: ollama.Client):
    whole = client.chat(model=MODEL, messages=HI, options=GREEDY)
    parts = list(client.chat(model=MODEL, messages=HI, options=GREEDY, stream=True))
    assert whole.message.role == "assistant" and whole.message.content.strip()
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert whole.done_reason == "length" and whole.eval_count == GREEDY["num_predict"]


def test_generate_streamed_and_whole(client: ollama.Client):
    whole = client.generate(model=MODEL, prompt="Name a colour.", options=GREEDY)
    parts = list(client.generate(model=MODEL, prompt="Name a colour.", options=GREEDY, stream=True))
    assert whole.response.strip() and "".join(p.response for p in parts) == whole.response
    assert whole.prompt_eval_count and whole.eval_count


def test_tags_list_each_model_and_each_preset(client: ollama.Client):
    names = [m.model for m in client.list().models]
    assert MODEL in names and f"{MODEL}@creative" in names and f"{MODEL}@factual" in names
    shown = client.show(f"{MODEL}@factual")
    assert shown.details.family == "llama" and shown.details.format == "gguf"
    assert "temperature" in (shown.parameters or "")  # the preset's own values, as Ollama lists a model's


def test_a_preset_by_name_answers(client: ollama.Client):
    reply = client.chat(model=f"{MODEL}@code", messages=HI, options={"num_predict": 4})
    assert reply.model == f"{MODEL}@code" and reply.eval_count == 4


def test_format_schema_gives_json_that_fits(client: ollama.Client):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Ada is 36."}], format=schema,
                        options={"num_predict": 40, "temperature": 0})  # fmt: skip
    assert isinstance(json.loads(reply.message.content)["age"], int)


def test_stop_and_num_predict_end_the_reply(client: ollama.Client):
    free = client.chat(model=MODEL, messages=HI, options=GREEDY).message.content
    word = free.split()[1]
    stopped = client.chat(model=MODEL, messages=HI, options={**GREEDY, "stop": [word]})
    assert stopped.done_reason == "stop" and word not in stopped.message.content
    assert free.startswith(stopped.message.content)


def test_andon_only_options_reach_the_chain(client: ollama.Client):
    """XTC at probability 1 removes every top choice but the least likely one above the threshold,
    so the greedy reply's first token is never chosen (llama.cpp's XTC); DRY and top-n-sigma are taken."""
    greedy = client.generate(model=MODEL, prompt="Say hello.", options=GREEDY).response
    xtc = client.generate(model=MODEL, prompt="Say hello.",
                          options={**GREEDY, "xtc_probability": 1.0, "xtc_threshold": 0.01}).response  # fmt: skip
    assert xtc and greedy and xtc.split()[0] != greedy.split()[0]
    more = {
        "dry_multiplier": 0.8,
        "dry_base": 1.75,
        "top_n_sigma": 1.0,
        "samplers": ["dry", "top_n_sigma", "temperature"],
    }
    assert client.generate(model=MODEL, prompt="Say hello.", options={**GREEDY, **more}).response


def test_an_unknown_option_is_the_cli_line_with_400(client: ollama.Client):
    cli = subprocess.run([sys.executable, "-m", "andon", "ask", "hi", "--set", "dry_multplier=1"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert cli.returncode == 2
    cli_line = cli.stderr.strip().removeprefix("andon: ")
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=MODEL, messages=HI, options={"dry_multplier": 1})
    assert caught.value.status_code == 400 and caught.value.error == cli_line
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=MODEL, messages=HI, options={"temperature": -1})
    assert caught.value.status_code == 400 and caught.value.error.startswith("temperature: -1")


def test_an_unknown_model_is_404_as_in_ollama(client: ollama.Client):
    for name in ("no-such-model", f"{MODEL}@no-such-preset", "/etc/passwd", "../../x.gguf"):
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(model=name, messages=HI)
        assert caught.value.status_code == 404 and "not found" in caught.value.error


def test_what_needs_the_network_says_so(client: ollama.Client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.pull(MODEL)
    assert caught.value.status_code == 501 and "offline" in caught.value.error


def test_a_resent_chat_reuses_its_cached_prefix(client: ollama.Client):
    chat = [{"role": "user", "content": "Tell me about the moon in two sentences."}]
    first = client.chat(model=MODEL, messages=chat, options=GREEDY)
    chat += [{"role": "assistant", "content": first.message.content}, {"role": "user", "content": "And the sun?"}]
    second = client.chat(model=MODEL, messages=chat, options=GREEDY)
    # turn 2's prompt holds turn 1's prompt and reply: only what is new is evaluated
    assert second.prompt_eval_count < first.prompt_eval_count + first.eval_count


def test_two_clients_at_once_each_get_their_own_reply(server: ServeServer):
    prompts = ["Name a fruit.", "Count from one to five."]
    alone = [ollama.Client(host=server.url).generate(model=MODEL, prompt=p, options=GREEDY).response for p in prompts]
    together: list[str] = ["", ""]

    def ask(i: int) -> None:
        parts = ollama.Client(host=server.url).generate(model=MODEL, prompt=prompts[i], options=GREEDY, stream=True)
        together[i] = "".join(p.response for p in parts)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert together == alone and alone[0] != alone[1]


def test_keep_alive_zero_unloads(client: ollama.Client):
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 1})
    assert [m.model for m in client.ps().models] == [MODEL]
    unloaded = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload" and client.ps().models == []
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model=MODEL, prompt="", keep_alive="soon")
    assert caught.value.status_code == 400 and caught.value.error.startswith("keep_alive:")
