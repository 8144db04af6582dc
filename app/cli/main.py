"""The `andon` command line. Commands are thin: they parse, call what the TUI calls, and print.

Only the standard library is imported before `main` runs; the heavy imports (numpy, llama.cpp) are
made where they are used. Ctrl-C while the program starts is andon's already (andon/_sigint.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from andon.app.cli import stdio
from andon.app.cli.prompt import STDIN_HELP
from andon.app.cli.summary import LOG_HELP
from andon.app.cli.version import VersionAction, version_text

if TYPE_CHECKING:
    from andon.app.chat.settings import Settings
    from andon.app.engine.client import EngineProcess
    from andon.app.engine.engine import Done


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from andon.app.errors import UsageError

        raise UsageError(f"{message} (see `{self.prog} --help`)")


VERBOSE_HELP = "after the reply, show its timings and the model's summary on standard error (as ollama run --verbose)"


def _common(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    from andon.app.engine.structured import format_option, grammar_option

    if model:
        p.add_argument(
            "--model", metavar="NAME|PATH",
            help="a model from `andon models`, an Ollama name or a .gguf file (default: the embedded SmolLM2-135M)",
        )  # fmt: skip
    p.add_argument("--preset", metavar="NAME", help="preset to start from (default: balanced)")
    p.add_argument(
        "--set", metavar="NAME=VALUE", action="append", default=[],
        help="override a parameter (repeatable; `andon presets parameters` lists them all)",
    )  # fmt: skip
    p.add_argument(
        "--format", dest="set", action="append", type=format_option, metavar="json|SCHEMA",
        help="reply in JSON: json (a JSON object), a JSON schema file, or inline schema text",
    )  # fmt: skip
    p.add_argument(
        "--grammar", dest="set", action="append", type=grammar_option, metavar="FILE.gbnf",
        help="the reply must be a sentence of this GBNF grammar (a file, or the grammar's text)",
    )  # fmt: skip
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.add_argument("--log", action="store_true", help=LOG_HELP)


def app_parser() -> Parser:
    """The options of `andon` itself (the chat app): read without any command's modules, so the app's
    first frame does not wait for them (every command's parser reads numpy, pydantic, the engine)."""
    parser = Parser(prog="andon", description="Offline chat with GGUF models and a complete sampler chain.")
    parser.add_argument("--model", metavar="NAME|PATH", help="model for the chat app (a name from `andon models`)")
    parser.add_argument("--preset", metavar="NAME", help="preset for new chats in the app")
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT[,...]",
        help="llama.cpp RPC servers for the model's layers (where no preset names any)",
    )
    parser.add_argument(
        "--server",
        nargs="?",
        const="http://127.0.0.1:11435",
        metavar="URL",
        help="use a running `andon serve`'s engines (default http://127.0.0.1:11435) instead of loading the model here",
    )
    parser.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-V", "--version", action=VersionAction)
    return parser


def build_parser() -> Parser:
    """`andon`'s whole command line: the app's options and every command."""
    parser = app_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    ask = sub.add_parser("ask", help="answer one prompt, streaming to standard output")
    ask.add_argument("prompt", nargs="?", metavar="PROMPT", help=STDIN_HELP)
    _common(ask)
    ask.add_argument("--system", metavar="TEXT", help="system prompt (default: the preset's)")
    ask.add_argument(
        "--json", action="store_true", help="print one JSON object with text, thinking, usage and parameters"
    )
    ask.add_argument(
        "--hide-thinking", action="store_true",
        help="do not show a reasoning model's thinking (shown on standard error by default; never on standard output)",
    )  # fmt: skip
    from andon.app.cli.raw import add_raw_options, logprobs_count

    add_raw_options(ask)
    ask.add_argument("--logprobs", type=logprobs_count, metavar="K",
                     help="with --json: each token's log-probability and its K likeliest alternatives")  # fmt: skip
    ask.set_defaults(func=cmd_ask)

    from andon.app.cli import presets as presets_cli

    presets_cli.add_parser(sub)
    from andon.app.cli import study as study_cli

    study_cli.add_parsers(sub, _common)
    from andon.app.cli import models as models_cli

    models_cli.add_parser(sub)
    from andon.app.cli import serve as serve_cli

    serve_cli.add_parser(sub)
    return parser


# Arguments that are file paths: passed to the system as it gave them. Every other argument is text
# and must be UTF-8 (presets/text.py); the labels name an argument where its option is not its dest.
PATH_ARGUMENTS = frozenset({"model", "modelfile"})
_LABELS = {"prompt": "the prompt", "name": "the name", "base": "--from"}


def check_text_arguments(args: argparse.Namespace) -> None:
    """TextError (one line, exit 2) for the first text argument that is not valid UTF-8."""
    from andon.presets import text

    for dest, value in vars(args).items():
        if dest in PATH_ARGUMENTS:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                label = f"--set {item.partition('=')[0]}" if dest == "set" else _LABELS.get(dest, f"--{dest}")
                text.check(item, label.replace("_", "-"))


AppRunner = Callable[..., int]  # starts the app: model, preset, verbose, rpc, server (andon.app.main gives it)


def main(argv: list[str] | None = None, app: AppRunner | None = None) -> int:
    """The `andon` command; returns its exit status. Whatever goes wrong, the user sees one line
    on standard error (never a traceback), and Ctrl-C ends it quietly with status 130. Without a
    subcommand it runs `app` (the CLI never imports the app: andon/app/main.py hands it over)."""
    argv = sys.argv[1:] if argv is None else argv
    with stdio.sigint(stdio.exit_interrupted):  # until a command takes over: nothing to keep yet
        stdio.reopen_closed()
        with stdio.checked_stdout() as stdout:
            try:
                try:
                    return _run(argv, stdout, app)
                except SystemExit as exc:  # argparse's --help, once it printed it
                    return exc.code if isinstance(exc.code, int) else 0
                finally:
                    sys.stdout.flush()  # what is still buffered: a write that fails is said here too
            except BaseException as exc:  # the last line of defence: one line, never a traceback
                return _failed(exc, stdout, verbose="--verbose" in argv)


def _run(argv: list[str], stdout: stdio.Output, app: AppRunner | None) -> int:
    if isinstance(stdout.stream, io.TextIOWrapper):  # a path with bytes that are not UTF-8 prints as \udcXX
        stdout.stream.reconfigure(errors="backslashreplace")
    if argv[:1] in (["--version"], ["-V"]):  # at once: the parser's imports (llama.cpp's too) take a second
        print(version_text())
        return 0
    args = _app_arguments(argv) or build_parser().parse_args(argv)
    check_text_arguments(args)
    # commands other than `ask` (which handles Ctrl-C itself) stop by KeyboardInterrupt, running
    # their own clean-ups (a progress bar gives the cursor back)
    with stdio.sigint(signal.default_int_handler):
        if args.command is not None:
            return int(args.func(args) or 0)
        if app is None:
            from andon.app.errors import UsageError

            raise UsageError("a command is needed (see andon --help)")
        with contextlib.redirect_stdout(stdout.stream):  # the app owns the terminal
            return app(model=args.model, preset=args.preset, verbose=args.verbose, rpc=args.rpc, server=args.server)


def _app_arguments(argv: list[str]) -> argparse.Namespace | None:
    """The arguments when `argv` starts the app (no command, no --help), parsed by the app's parser
    alone; None when a command (or anything else) is there, for the whole parser to read."""
    if {"-h", "--help"} & set(argv):
        return None
    args, rest = app_parser().parse_known_args(argv)
    if rest:
        return None
    args.command = None
    return args


def _failed(exc: BaseException, stdout: stdio.Output, verbose: bool) -> int:
    """The line an exception ends the command with (on standard error), and the exit status."""
    if isinstance(exc, BrokenPipeError) and stdout.failed:  # its reader went away: quietly, as `yes | head`
        return stdio.BROKEN_PIPE
    if isinstance(exc, KeyboardInterrupt):
        stdio.say("\nandon: interrupted")
        return stdio.INTERRUPTED
    if isinstance(exc, stdio.StreamError):
        stdio.say(f"andon: {stdio.one_line(str(exc))}")
        return exc.status
    if isinstance(exc, _user_errors()):
        stdio.say(f"andon: {stdio.one_line(str(exc))}")
        return 2
    if isinstance(exc, _engine_died()):  # the engine process ended (killed, crashed): its line says how
        stdio.say(f"andon: {stdio.one_line(str(exc))}")
        return 1
    if not isinstance(exc, Exception):
        raise exc  # SystemExit from elsewhere, GeneratorExit: not andon's to report
    if verbose:
        with contextlib.suppress(OSError, ValueError):
            traceback.print_exc()
    reason = stdio.one_line(f"{type(exc).__name__}: {exc}")
    stdio.say(f"andon: internal error: {reason} (rerun with --verbose for details)")
    return 1


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors whose message is written for the user (app/errors.py), () if andon cannot import them."""
    try:
        from andon.app.errors import USER_ERRORS
    except Exception:
        return ()
    return USER_ERRORS


def _engine_died() -> tuple[type[Exception], ...]:
    try:
        from andon.app.engine.client import EngineDied
    except Exception:
        return ()
    return (EngineDied,)


def cmd_ask(args: argparse.Namespace) -> int:
    """One prompt answered: the reply on standard output, everything else on standard error."""
    started = time.monotonic()
    sys.stdout.write("")  # a closed standard output is said at once, not once the model has loaded
    # Ctrl-C before the reply begins has nothing to keep: it ends the process at once
    with stdio.sigint(stdio.exit_interrupted), stdio.shown_stderr() as stderr:
        from andon.app.chat.settings import resolve_settings
        from andon.app.cli.prompt import read_prompt
        from andon.app.cli.raw import check_raw
        from andon.app.engine.client import EngineProcess
        from andon.app.engine.loading import ModelOptions

        check_raw(args)
        prompt = read_prompt(args.prompt)
        settings = resolve_settings(args.preset, args.set, args.system, args.model)
        for note in settings.notes:  # the model's own defaults that andon does not use
            print(f"andon: {args.model or settings.preset.model}: {note}", file=sys.stderr)
        loading = time.monotonic()
        engine = EngineProcess(ModelOptions.from_parameters(settings.model_path, settings.params, args.log))
        load_s = time.monotonic() - loading
        try:
            for warning in settings.warnings:  # e.g. num_ctx past the model's trained context (once it loaded)
                print(f"andon: warning: {warning}", file=sys.stderr)
            done = _stream_reply(engine, settings, prompt, args, stderr)
        finally:
            engine.close()
        _print_reply_end(done, settings, args)
        if args.verbose:
            from andon.app.cli.summary import model_lines, reply_lines

            lines = [
                *reply_lines(done, time.monotonic() - started, load_s),
                *model_lines(settings.model_path, engine.n_ctx),
            ]
            print("\n".join(lines), file=sys.stderr)
    return stdio.INTERRUPTED if done.finish_reason == "cancelled" else 0


def _print_reply_end(done: Done, settings: Settings, args: argparse.Namespace) -> None:
    """The reply's end on standard output: its line's newline, or (--json) the whole JSON object."""
    if args.json:
        from andon.app.models.catalog import display_name  # the name `--model` takes back, as `andon models` lists it

        result = ask_result(done, settings.params.to_plain(), display_name(settings.model_path))
        if args.logprobs is not None:  # OpenAI's shape: logprobs.content, one entry per token
            result["logprobs"] = {"content": done.logprobs}
        print(json.dumps(result, ensure_ascii=False))
        return
    sys.stdout.write("\n")
    if done.finish_reason == "cancelled":
        print("andon: reply stopped", file=sys.stderr)


def _stream_reply(engine: EngineProcess, settings: Settings, prompt: str, args: argparse.Namespace,
                  stderr: stdio.Output) -> Done:  # fmt: skip
    """Write the reply as it comes (its thinking on standard error); Ctrl-C stops it between
    tokens, keeping what was written. A write that fails stops the engine at once."""
    from andon.app.engine.engine import Delta, Done, ReplyNotice

    done: Done | None = None
    thinking = ThinkingOutput(stderr, hide=args.hide_thinking or args.json)
    with stdio.ReplyInterrupt() as interrupted:
        # the engine computes a token only when asked for the next event: a write that fails
        # (a closed pipe, a full disk) leaves the loop, and no token is computed after it
        from andon.app.cli.raw import raw_prompt

        raw = raw_prompt(args, engine, prompt)
        events = engine.stream(settings.messages(prompt), settings.params, cancelled=interrupted, prompt=raw,
                               logprobs=args.logprobs)  # fmt: skip
        for event in events:
            if isinstance(event, Delta) and not args.json:
                thinking.write(event.thinking)
                if event.text:
                    thinking.end()
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
            elif isinstance(event, ReplyNotice):
                print(f"andon: {event.text}", file=sys.stderr)
            elif isinstance(event, Done):
                done = event
    thinking.end()
    assert done is not None  # the engine ends every reply with one Done
    return done


class ThinkingOutput:
    """A reasoning model's thinking, streamed to standard error as `ollama run` shows it: under
    "Thinking...", then "...done thinking." before the answer; dimmed on a terminal (unless
    NO_COLOR is set), its control characters shown. Standard output has the answer only."""

    DIM, PLAIN = "\x1b[2m", "\x1b[0m"

    def __init__(self, stream: stdio.Output, hide: bool = False) -> None:
        self.stream, self.hide = stream, hide
        self.dim = stream.isatty() and not os.environ.get("NO_COLOR")
        self.started = self.ended = False
        self.last = ""

    def write(self, text: str) -> None:
        if self.hide or self.ended or not text:
            return
        if not self.started:
            self.started = True
            self._out("Thinking...\n")
        self._out(text)
        self.last = text

    def end(self) -> None:
        if self.started and not self.ended:
            self.ended = True
            self._out(("" if self.last.endswith("\n") else "\n") + "...done thinking.\n\n")

    def _out(self, text: str) -> None:
        if self.dim:
            self.stream.style(self.DIM)
        self.stream.write(text)
        if self.dim:
            self.stream.style(self.PLAIN)
        self.stream.flush()


def ask_result(done: Done, parameters: dict[str, Any], model: str) -> dict[str, Any]:
    u = done.usage
    usage: dict[str, Any] = {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "ttft_s": round(u.ttft_s, 4),
        "tokens_per_second": round(u.tokens_per_second, 2),
    }
    if parameters.get("draft"):  # speculative decoding: drafted tokens verified, and kept
        usage |= {"drafted_tokens": u.drafted_tokens, "accepted_tokens": u.accepted_tokens}
    if u.thinking_tokens:  # a reasoning model: the thinking's tokens and the answer's apart
        usage |= {"thinking_tokens": u.thinking_tokens, "answer_tokens": u.completion_tokens - u.thinking_tokens}
    if parameters.get("banned_strings"):  # how many times a banned phrase was taken back
        usage["rewinds"] = u.rewinds
    return {
        "text": done.text,
        "thinking": done.thinking,  # a reasoning model's thinking ("" for a model that does not think)
        "finish_reason": done.finish_reason,
        "usage": usage,
        "parameters": parameters,
        "seed": done.seed,
        "model": model,
    } | ({"candidates": done.candidates} if done.candidates else {})  # num_beams / mbr_samples: each, best first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
