"""The architecture as `ls` shows it, kept: which part may import which, and no import circles.

samplers <- presets <- app; in app, the engine (all that runs in the engine process) never imports
the chat, the study commands, the CLI or the app's UI; the CLI and the UI never import each other
(andon/app/main.py is the one place that knows both). Every import counts, at the top of a module
or inside a function; only those under `if TYPE_CHECKING:` (never run) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"andon.samplers": "samplers", "andon.presets": "presets", "andon.app": "app", "andon": "andon"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        base = ROOT / folder
        paths = base.glob("*.py") if package == "andon" else base.rglob("*.py")
        for path in paths:
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The andon modules `path` imports when it runs (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def part(module: str) -> str:
    """The part of the house a module belongs to: andon.app.engine, andon.presets, ..."""
    pieces = module.split(".")
    return ".".join(pieces[:3]) if pieces[:2] == ["andon", "app"] and len(pieces) > 3 else ".".join(pieces[:2])


FORBIDDEN = {
    "andon.samplers": ("andon.presets", "andon.app"),
    "andon.presets": ("andon.app",),
    "andon.app.engine": ("andon.app.chat", "andon.app.study", "andon.app.cli", "andon.app.tui"),
    "andon.app.models": ("andon.app.chat", "andon.app.study", "andon.app.cli", "andon.app.tui"),
    "andon.app.chat": ("andon.app.cli", "andon.app.tui", "andon.app.study"),
    "andon.app.study": ("andon.app.cli", "andon.app.tui"),
    "andon.app.serve": ("andon.app.cli", "andon.app.tui", "andon.app.study"),
    "andon.app.cli": ("andon.app.tui",),
    "andon.app.tui": ("andon.app.cli", "andon.app.serve"),
}
# the one door into the server from outside it: `andon serve` (app/cli/serve.py)
SERVE_DOOR = "andon.app.cli.serve"


def test_each_part_imports_only_the_parts_below_it():
    broken = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        for banned in FORBIDDEN.get(part(module), ())
        if target == banned or target.startswith(banned + ".")
    ]
    assert not broken, "\n".join(sorted(broken))


def test_only_the_serve_command_imports_the_server():
    """The server uses the engine, the models, the presets and the chat's settings; nothing below it
    or beside it imports it, but the CLI's `serve` command."""
    outside = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if target.startswith("andon.app.serve") and part(module) != "andon.app.serve" and module != SERVE_DOOR
    ]
    assert not outside, "\n".join(sorted(outside))


def test_no_module_imports_itself_through_others():
    edges = graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_folders_are_the_parts():
    """`ls app` shows the parts; no module is left flat beside them but the few every part shares."""
    flat = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert flat == ["__init__.py", "control_text.py", "errors.py", "main.py"]
    assert {p.name for p in (ROOT / "app").iterdir() if p.is_dir() and p.name != "__pycache__"} >= {
        "engine", "models", "chat", "study", "cli", "tui", "serve"
    }  # fmt: skip
