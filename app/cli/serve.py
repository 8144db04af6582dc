"""`andon serve`: Ollama's and OpenAI's APIs for any client, on this machine only unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from andon.app.serve.run import DEFAULT_PORT, close, make_server, warning_for


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve Ollama's and OpenAI's APIs (any model, any preset as NAME@PRESET)",
        description="Serve Ollama's API (/api/chat, /api/generate, ...) and OpenAI's (/v1/chat/completions, ...) "
        "with every andon parameter; models by the names `andon models` lists, or NAME@PRESET.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; Ollama's is 11434)")
    p.add_argument(
        "--api-key", metavar="KEY", default=os.environ.get("ANDON_API_KEY", ""),
        help="require `Authorization: Bearer KEY` on every request (default: $ANDON_API_KEY)",
    )  # fmt: skip
    p.add_argument("--verbose", action="store_true", help="log each request on standard error")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from andon.app.errors import UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is not a port (0 to 65535)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="andon serve: %(message)s")
    server = make_server(args.host, args.port, args.api_key)
    warning = warning_for(args.host)
    if warning:
        print(f"andon: warning: {warning}", file=sys.stderr)
    print(f"andon serve: {server.url} (Ollama's and OpenAI's APIs; Ctrl+C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        close(server)
    return 0
