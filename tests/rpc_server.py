"""A llama.cpp RPC server on this machine's CPU, for tests and benchmarks, with no binary to build.

It is ggml-rpc-server's own loop, `ggml_backend_rpc_start_server`, called through the libllama that
llama-cpp-python ships (built with -DGGML_RPC=on). Run it as a script, or use `serving()`:

    python tests/rpc_server.py [PORT] [THREADS]      # serves 127.0.0.1:PORT until killed
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_CPU = 0  # GGML_BACKEND_DEVICE_TYPE_CPU


def serve(port: int, threads: int = 1) -> None:
    """Serve 127.0.0.1:port with the CPU device, forever (ggml's loop: one client at a time)."""
    from llama_cpp import llama_cpp as bindings

    lib = bindings._lib  # its libggml is the one whose CPU device and RPC server belong together
    lib.ggml_backend_load_all()
    lib.ggml_backend_dev_by_type.argtypes, lib.ggml_backend_dev_by_type.restype = [ctypes.c_int], ctypes.c_void_p
    start = lib.ggml_backend_rpc_start_server
    start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    devices = (ctypes.c_void_p * 1)(lib.ggml_backend_dev_by_type(_CPU))
    start(f"127.0.0.1:{port}".encode(), None, threads, 1, devices)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    endpoint: str  # "127.0.0.1:PORT"
    process: subprocess.Popen


@contextlib.contextmanager
def serving(threads: int = 1, timeout: float = 30.0) -> Iterator[Server]:
    """A server in a child process on a free port, killed on leaving."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__)), str(port), str(threads)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(proc, port, timeout)
        yield Server(f"127.0.0.1:{port}", proc)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the RPC server exited with status {proc.returncode}: {err.strip()}")
        try:
            # a bare connection: the server sees no hello, closes it and waits for the next client
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the RPC server did not listen on port {port} within {timeout:g} s")


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 50052, int(sys.argv[2]) if len(sys.argv) > 2 else 1)
