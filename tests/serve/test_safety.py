"""What keeps `andon serve` safe by default: Host and Origin checks, the API key, body limits,
malformed JSON, a client gone mid-reply, `andon serve` on a busy port."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import ollama
import openai
import pytest
from andon.app.serve.http import ServeServer

from tests.serve.conftest import MODEL, serving

pytestmark = pytest.mark.model


def request(server: ServeServer, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{server.port}", **headers})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data.startswith(b"{") else {"text": data.decode()}


def test_a_host_that_is_not_this_server_is_refused(server: ServeServer):
    """A DNS name of an attacker's page pointed at 127.0.0.1 (DNS rebinding) gets nothing."""
    status, body = request(server, "GET", "/api/tags", Host=f"evil.example:{server.port}")
    assert status == 403 and "Host" in body["error"]
    assert request(server, "GET", "/api/tags", Host=f"localhost:{server.port}")[0] == 200


def test_another_site_s_page_is_refused(server: ServeServer):
    status, body = request(server, "POST", "/api/chat", b"{}", Origin="https://evil.example")
    assert status == 403 and "evil.example" in body["error"]
    status, _ = request(server, "GET", "/api/tags")
    assert status == 200


def test_bad_json_is_400_and_a_huge_body_413(server: ServeServer):
    status, body = request(server, "POST", "/api/chat", b"{not json")
    assert status == 400 and body["error"].startswith("the request is not JSON")
    status, body = request(server, "POST", "/v1/chat/completions", b"[1]")
    assert status == 400 and body["error"]["message"] == "the request must be a JSON object"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:  # refused before it is read
        sock.sendall(f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Content-Length: {17 << 20}\r\n\r\n".encode())  # fmt: skip
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413") and b"at most 16777216" in answer


def test_a_path_never_reaches_a_file(server: ServeServer):
    status, body = request(server, "POST", "/api/chat", json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "options": {"draft": "/etc/passwd"}}
    ).encode())  # fmt: skip
    assert status == 400 and body["error"].startswith("draft: model '/etc/passwd' not found")
    status, body = request(server, "POST", "/api/show", json.dumps({"model": "/etc/passwd"}).encode())
    assert status == 404


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeServer]:
    yield from serving(tmp_path_factory.mktemp("keyed"), api_key="s3cret")


def test_the_api_key_is_asked_on_every_route(keyed: ServeServer):
    for path in ("/api/tags", "/v1/models", "/api/version", "/"):
        assert request(keyed, "GET", path)[0] == 401
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=keyed.url).list()
    assert caught.value.status_code == 401
    assert ollama.Client(host=keyed.url, headers={"Authorization": "Bearer s3cret"}).list().models
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="s3cret").models.list().data


def test_a_client_gone_mid_reply_frees_the_engine_at_once(server: ServeServer):
    """A reply of 4000 tokens is left after its first lines: the next request is answered at once."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = {"model": MODEL, "prompt": "Write a long story.", "options": {"num_predict": 4000, "temperature": 1}}
    conn.request("POST", "/api/generate", body=json.dumps(body), headers={"Host": f"127.0.0.1:{server.port}"})
    response = conn.getresponse()
    for _ in range(3):
        response.fp.readline()
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    started = time.monotonic()
    reply = ollama.Client(host=server.url).generate(model=MODEL, prompt="Hi", options={"num_predict": 2})
    assert reply.eval_count == 2 and time.monotonic() - started < 10


def test_serve_on_a_busy_port_is_one_line_and_status_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "andon", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"andon: port {port} on 127.0.0.1 is in use (another andon serve?); "
                                          "choose another with --port"]  # fmt: skip


def test_another_address_is_said_with_a_warning():
    proc = subprocess.Popen([sys.executable, "-m", "andon", "serve", "--host", "0.0.0.0", "--port", "0"],
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert first.startswith("andon: warning: listening on 0.0.0.0: other machines") and "--api-key" in first
    assert second.startswith("andon serve: http://0.0.0.0:") and len(second.rstrip("\n")) <= 80
