"""Beam search and MBR through `andon serve` with the official `ollama` client: the options reach the
engine, and a combination andon refuses is HTTP 400 with the CLI's one line."""

from __future__ import annotations

import subprocess
import sys

import ollama
import pytest
from andon.app.serve.http import ServeServer

from tests.serve.conftest import MODEL

pytestmark = pytest.mark.model
COLOUR = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def client(server: ServeServer) -> ollama.Client:
    return ollama.Client(host=server.url)


def test_beams_with_mbr_is_the_cli_line_with_400(client: ollama.Client):
    cli = subprocess.run([sys.executable, "-m", "andon", "ask", "hi", "--set", "num_beams=4", "--set", "mbr_samples=4"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=MODEL, messages=COLOUR, options={"num_beams": 4, "mbr_samples": 4})
    assert caught.value.status_code == 400
    assert caught.value.error == cli.stderr.strip().removeprefix("andon: ")
    assert "cannot be used together" in caught.value.error


def test_a_grammar_constrained_beam_search_answers(client: ollama.Client):
    grammar = 'root ::= "red" | "blue" | "green"'
    reply = client.chat(model=MODEL, messages=COLOUR, options={"num_beams": 3, "grammar": grammar, "num_predict": 8})
    assert reply.message.content in {"red", "blue", "green"} and reply.done_reason == "stop"
