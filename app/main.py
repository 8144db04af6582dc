"""The `andon` command: a subcommand of the CLI (`andon.app.cli`), or the chat app (`andon.app.tui`)
when none is given. The one place that knows both: the CLI and the app never import each other."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from andon.app.cli.main import main as command

    return command(argv, app=run_app)


def run_app(**options: object) -> int:
    """The chat app (model, preset, verbose, rpc as the command line gave them)."""
    from andon.app.tui.run import run_app as run

    return run(**options)  # type: ignore[arg-type]
