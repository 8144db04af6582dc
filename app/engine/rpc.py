"""llama.cpp RPC: the model's layers on other machines' `ggml-rpc-server`, sampling kept here.

Servers become devices the way llama.cpp's own tools add them (`--rpc`, common/arg.cpp
add_rpc_devices): load the backends, find the "RPC" backend in ggml's registry, get its
`ggml_backend_rpc_add_server`, and register the backend that returns for each server. llama.cpp then
places the layers on those devices (first in its device list) as it would on local GPUs, `num_gpu`
counting them. Everything goes through the libllama that llama-cpp-python loaded: its libggml holds
the registry the model is loaded with (opening libggml by its path can map a second copy with an
empty registry of its own).

ggml's device registry belongs to the process, so `use()` keeps it equal to the servers asked for
(adding one, or dropping all of them) before each model load.

ggml-rpc ends the process (GGML_ABORT) when a server cannot be reached or goes away. So, before
ggml sees a server, `probe` connects from Python with a timeout and checks the RPC hello; and while
RPC is in use, the llama.cpp calls that talk to servers run on a helper thread (`guarded`), while
ggml's abort callback turns ggml-rpc's abort into `RpcError` for the caller: the thread that hit the
fault is parked for good (returning would abort), the model that used the lost server is leaked
rather than freed (freeing it would wait for the dead server), and RPC stays off until andon restarts.
"""

from __future__ import annotations

import ctypes
import math
import os
import queue
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
from andon.app.engine.context import KVContext
from andon.app.engine.errors import ModelLoadError
from numpy.typing import NDArray

T = TypeVar("T")

NO_RPC = (
    "this llama.cpp build has no RPC backend; rebuild llama-cpp-python with "
    'CMAKE_ARGS="-DGGML_RPC=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)
CONNECT_TIMEOUT_S = 3.0  # for the connection and the hello of each server, before ggml sees it
STALL_S = 120.0  # an evaluation that a server leaves unanswered this long counts as a lost server
CANCEL_WAIT_S = 10.0  # how long a stopped reply still waits for a server's answer
HAND_OVER_S = 2.0  # how long a fault hit on ggml's own thread waits for a caller to report it to

# The hello of ggml-rpc (ggml/src/ggml-rpc/ggml-rpc.cpp, ggml-rpc.h of the llama.cpp that
# llama-cpp-python vendors): command byte 14, a 64-bit size, 24 bytes of transport capabilities
# (zero: plain TCP); the reply is major, minor, patch, padding and 24 bytes of capabilities.
PROTOCOL = (7, 0)  # RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION
_HELLO = 14
_CAPS = 24
_SIZE = struct.Struct("=Q")
# ggml-rpc cannot reconnect within a process: the engine process ends (engine/server.py), and the
# next message starts a new one, which connects again
_RESTART = "the next message starts a new engine, which connects again"


class RpcError(ModelLoadError):
    """RPC servers the model cannot use (or no longer), or a build without RPC; the message is for
    the user. A ModelLoadError: the model cannot be loaded, or has become unusable, because of it."""


@dataclass
class _Process:
    """ggml's RPC state in this process, which outlives any one model."""

    registered: tuple[str, ...] = ()  # the servers that are devices now
    backends: dict[str, int] = field(default_factory=dict)  # endpoint -> its ggml_backend_reg_t
    lost: str = ""  # set once a connection broke: RPC is unusable for the rest of the process
    runner: _Runner | None = None
    callback: Any = None  # ggml's abort callback: must outlive every call ggml makes to it
    reported: bool = False  # whether `lost` was raised to a caller as RpcError


_process = _Process()


# --- endpoints ------------------------------------------------------------------------------


def resolve(endpoint: str) -> str:
    """`host:port` -> `a.b.c.d:port`, the IPv4 address ggml-rpc will connect to (it uses
    gethostbyname), so two names of one server are one device."""
    host, _, port = endpoint.strip().rpartition(":")
    if host.startswith("[") or ":" in host:
        raise RpcError(f"rpc: {endpoint}: llama.cpp's RPC client connects to IPv4 addresses and host names only")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise RpcError(f"rpc: {endpoint!r} is not allowed (must be host:port, port 1-65535)")
    try:
        return f"{socket.gethostbyname(host)}:{int(port)}"
    except (OSError, UnicodeError):
        raise RpcError(f"rpc: cannot resolve the host name of {endpoint}") from None


def probe(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> tuple[int, int, int]:
    """Connect to a resolved "a.b.c.d:port" and exchange ggml-rpc's hello; its protocol version.

    Raises RpcError naming the server when it does not answer within `timeout`, is not an RPC
    server, or speaks another protocol version than this llama.cpp (ggml would abort on any of them).
    """
    host, _, port = endpoint.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except ConnectionRefusedError:
        raise RpcError(
            f"rpc: nothing listens at {endpoint} (connection refused); is ggml-rpc-server running?"
        ) from None
    except TimeoutError:
        raise RpcError(
            f"rpc: {endpoint} did not answer within {timeout:g} s (a wrong address or a firewall?)"
        ) from None
    except OSError as exc:
        raise RpcError(f"rpc: cannot connect to {endpoint} ({exc.strerror or exc})") from None
    try:
        with sock:
            sock.sendall(bytes([_HELLO]) + _SIZE.pack(_CAPS) + bytes(_CAPS))
            size = _SIZE.unpack(_receive(sock, _SIZE.size))[0]
            reply = _receive(sock, size) if size == 4 + _CAPS else b""
    except TimeoutError:
        raise RpcError(
            f"rpc: {endpoint} accepted the connection but did not answer the RPC hello within {timeout:g} s "
            "(a ggml-rpc-server serves one client at a time: is another one using it?)"
        ) from None
    except EOFError as exc:
        raise _not_rpc(endpoint, str(exc)) from None
    except OSError as exc:
        raise _not_rpc(endpoint, exc.strerror or type(exc).__name__) from None
    if not reply:
        raise _not_rpc(endpoint, "unexpected hello reply")
    version = (reply[0], reply[1], reply[2])
    if version[0] != PROTOCOL[0] or version[1] > PROTOCOL[1]:
        raise RpcError(
            f"rpc: {endpoint} speaks RPC protocol {'.'.join(map(str, version))}, this llama.cpp "
            f"{PROTOCOL[0]}.{PROTOCOL[1]}: build ggml-rpc-server from the llama.cpp version llama-cpp-python vendors"
        )
    return version


def _receive(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return data


def _not_rpc(endpoint: str, why: str) -> RpcError:
    return RpcError(f"rpc: {endpoint} is not a ggml-rpc-server that this llama.cpp can talk to ({why})")


# --- ggml's registry --------------------------------------------------------------------------


def supported() -> bool:
    """Whether the llama.cpp that llama-cpp-python loaded has the RPC backend."""
    import llama_cpp

    _ggml()  # backends built as modules are loaded first
    return bool(llama_cpp.llama_supports_rpc())


def _ggml() -> Any:
    """libllama's handle, through which ggml's functions resolve to the libggml the model uses."""
    from llama_cpp import llama_cpp as bindings

    lib = bindings._lib
    if _process.callback is None:
        void_p, char_p = ctypes.c_void_p, ctypes.c_char_p
        for name, args, result in (
            ("ggml_backend_load_all", [], None),
            ("ggml_backend_reg_by_name", [char_p], void_p),
            ("ggml_backend_reg_get_proc_address", [void_p, char_p], void_p),
            ("ggml_backend_register", [void_p], None),
            ("ggml_backend_unload", [void_p], None),
            ("ggml_set_abort_callback", [void_p], void_p),
        ):
            getattr(lib, name).argtypes, getattr(lib, name).restype = args, result
        lib.ggml_backend_load_all()  # as llama.cpp's add_rpc_devices does (for backends built as modules)
        _process.callback = _AbortCallback(_on_abort)
        lib.ggml_set_abort_callback(ctypes.cast(_process.callback, ctypes.c_void_p))
    return lib


_AbortCallback = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


def use(endpoints: Sequence[str], timeout: float = CONNECT_TIMEOUT_S) -> tuple[str, ...]:
    """Make these servers, and only these, the RPC devices of the next model load.

    Each new server is probed first. A server named twice (or by two names) is one device.
    Returns the resolved endpoints. Raises RpcError with one line for the user.
    """
    wanted = tuple(dict.fromkeys(resolve(e) for e in endpoints))  # a bad address is said first, whatever the build
    if wanted and not supported():
        raise RpcError(NO_RPC)
    if wanted and _process.lost:
        raise RpcError(_process.lost)
    if wanted == _process.registered:
        return wanted
    lib = _ggml()
    for endpoint in wanted:
        if endpoint not in _process.registered:
            probe(endpoint, timeout)
    rpc_backend = lib.ggml_backend_reg_by_name(b"RPC")
    add_server = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(
        lib.ggml_backend_reg_get_proc_address(rpc_backend, b"ggml_backend_rpc_add_server")
    )
    _unregister_all(lib, rpc_backend)
    for endpoint in wanted:
        backend = _process.backends.get(endpoint) or guarded(partial(add_server, endpoint.encode()), timeout)
        if not backend:
            raise RpcError(f"rpc: {endpoint} offers no device")
        _process.backends[endpoint] = backend
        lib.ggml_backend_register(backend)
        _process.registered = (*_process.registered, endpoint)
    return wanted


def _unregister_all(lib: Any, rpc_backend: int) -> None:
    """Take every RPC device out of ggml's registry (their objects stay, for a later `use`).

    The devices of every server point to the one "RPC" backend, so unloading it removes them all;
    it is registered again at once so that llama.cpp still finds the RPC backend.
    """
    if not _process.registered:
        return
    for endpoint in _process.registered:
        lib.ggml_backend_unload(_process.backends[endpoint])
    lib.ggml_backend_unload(rpc_backend)
    lib.ggml_backend_register(rpc_backend)
    _process.registered = ()


def registered() -> tuple[str, ...]:
    return _process.registered


# --- calls that may wait on a server ------------------------------------------------------------


def _on_abort(message: bytes | None) -> None:
    """ggml is about to abort the process. For ggml-rpc's aborts, park this thread instead."""
    text = (message or b"").decode("utf-8", "replace")
    if "ggml-rpc" not in text:
        print(text, file=sys.stderr, flush=True)  # what ggml prints without a callback; abort follows
        return
    servers = ", ".join(_process.registered) or "an RPC server"
    _process.lost = f"rpc: lost the connection to {servers} (the server stopped, or the network failed); {_RESTART}"
    # A guarded call reports the loss; ggml may hit it on its own thread a little before (after an
    # asynchronous request). Without a caller to report it to, end the process in one line.
    deadline = time.monotonic() + HAND_OVER_S
    while not _process.reported and time.monotonic() < deadline:
        time.sleep(0.01)
    if not _process.reported:
        sys.stdout.flush()
        print(f"andon: {_process.lost}", file=sys.stderr, flush=True)
        os._exit(2)
    threading.Event().wait()  # never return: ggml calls abort() when its callback returns


@dataclass
class _Job:
    call: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.call()
        except BaseException as exc:  # handed to the waiting caller
            self.error = exc
        finally:
            self.done.set()


class _Runner:
    """One daemon thread for the calls that may wait on a server. One thread, reused: llama.cpp's
    CPU backend keeps its worker pool per calling thread."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="andon-rpc-calls", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.jobs.get().run()


def guarded(call: Callable[[], T], stall_s: float | None = None, cancelled: Callable[[], bool] | None = None) -> T:
    """`call()`, but a lost RPC server raises RpcError here instead of ending or hanging the
    process. So does a server silent for `stall_s`, or for CANCEL_WAIT_S after `cancelled()` (Esc,
    Ctrl-C) turned true. For llama.cpp calls while RPC devices are in use."""
    if _process.lost:
        raise _lost()
    if _process.runner is None:
        _process.runner = _Runner()
    job = _Job(call)
    _process.runner.jobs.put(job)
    deadline = math.inf if stall_s is None else time.monotonic() + stall_s
    while not job.done.wait(0.05):
        if not _process.lost and cancelled is not None and deadline - time.monotonic() > CANCEL_WAIT_S and cancelled():
            deadline = time.monotonic() + CANCEL_WAIT_S  # a slow answer may still come; a lost one will not
        if not _process.lost and time.monotonic() > deadline:
            servers = ", ".join(_process.registered)
            _process.lost = f"rpc: stopped waiting for {servers}, which left a request unanswered; {_RESTART}"
        if _process.lost:
            _process.runner = None  # its thread waits on the lost server for good
            _keep_forever(job)  # and so does the model it was using
            raise _lost()
    if job.error is not None:
        raise job.error
    return job.value


def _lost() -> RpcError:
    _process.reported = True
    return RpcError(_process.lost)


def _keep_forever(owner: object) -> None:
    """Never free `owner` (nor what it holds), not even at exit: freeing a model whose server was
    lost sends requests that nothing answers, and waits for the answers for good."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(owner))


def lost() -> bool:
    """Whether an RPC server was lost in this process (RPC is unusable here from then on)."""
    return bool(_process.lost)


def load(endpoints: Sequence[str], make: Callable[[], T]) -> T:
    """`make()` a model with these RPC servers as its devices (none: this machine alone)."""
    if not use(endpoints):
        return make()
    return guarded(make)


def release(llm: Any) -> None:
    """Free a model that used RPC devices, or keep it for good if its server was lost."""
    if not _process.lost:
        try:
            guarded(llm.close, stall_s=10.0)
            return
        except RpcError:
            pass
    _keep_forever(llm)


class GuardedContext(KVContext):
    """The KV-cached context of a model on RPC devices: its evaluations are `guarded`, so a lost
    server ends the reply with RpcError rather than the process, and so does stopping a reply
    (`cancelled`, set for each reply) that a silent server holds up."""

    cancelled: Callable[[], bool] | None = None

    def prefill(self, tokens: Sequence[int], cancelled: Callable[[], bool] | None = None) -> int:
        return guarded(partial(super().prefill, tokens, cancelled), STALL_S, self.cancelled)

    def append(self, tokens: Sequence[int]) -> None:
        guarded(partial(super().append, tokens), STALL_S, self.cancelled)

    def append_all_logits(self, tokens: Sequence[int], threads: int | None = None) -> NDArray[np.float32]:
        return guarded(partial(super().append_all_logits, tokens, threads), STALL_S, self.cancelled)

    def truncate(self, n: int) -> bool:
        return guarded(partial(super().truncate, n), STALL_S, self.cancelled)

    def logits(self) -> NDArray[np.float32]:  # llama.cpp waits here for an evaluation to finish
        return guarded(super().logits, STALL_S, self.cancelled)
