"""`andon presets ...`: list, show, save, delete, import and export presets."""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

from andon.app.engine.grammar import GrammarError
from andon.app.engine.speculative import DraftModelError
from andon.app.engine.structured import check_change, resolve_assignment
from andon.app.models.catalog import resolve_from
from andon.app.models.files import EMBEDDED_NAME, ModelPathError, check_gguf
from andon.presets.commands import apply, parameter_lines, parse_assignments
from andon.presets.modelfile import TEMPLATE_UNUSED, ModelfileError, export_modelfile, parse_modelfile
from andon.presets.parameters import DEFAULTS, Parameters
from andon.presets.preset import check_name
from andon.presets.store import DEFAULT_PRESET, PresetError, PresetStore, os_reason
from andon.presets.table import parameter_table
from andon.presets.text import decode

# A Modelfile is a few lines of text; more is not one (a model file given by mistake, /dev/zero).
MAX_MODELFILE_BYTES = 4 << 20


def add_parser(sub) -> None:
    presets = sub.add_parser("presets", help="list, show, save, delete, import and export presets")
    ps = presets.add_subparsers(dest="presets_command", metavar="ACTION", required=True)

    ps.add_parser("list", help="every preset, built-in and yours").set_defaults(func=cmd_list)

    show = ps.add_parser("show", help="a preset's description, system prompt and parameters")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)

    save = ps.add_parser("save", help="save a user preset (only what differs from the defaults is written)")
    save.add_argument("name")
    save.add_argument("--from", dest="base", metavar="NAME", help=f"start from this preset (default: {DEFAULT_PRESET})")
    save.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="a parameter (repeatable)")
    save.add_argument("--system", metavar="TEXT", help="the system prompt")
    save.add_argument("--description", metavar="TEXT", help="what the preset is for")
    save.set_defaults(func=cmd_save)

    delete = ps.add_parser("delete", help="delete a user preset (a built-in one of that name comes back)")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_delete)

    imp = ps.add_parser("import", help="import an Ollama Modelfile as a preset")
    imp.add_argument("modelfile", metavar="MODELFILE")
    imp.add_argument("--name", help="preset name (default: the file's name)")
    imp.set_defaults(func=cmd_import)

    par = ps.add_parser("parameters", help="every parameter: default, what is allowed, what it does")
    par.add_argument("--markdown", action="store_true", help="as a Markdown table (the one in README.md)")
    par.set_defaults(func=cmd_parameters)

    exp = ps.add_parser("export", help="print a preset as an Ollama Modelfile")
    exp.add_argument("name")
    exp.set_defaults(func=cmd_export)


def cmd_list(args: argparse.Namespace) -> int:
    entries, problems = PresetStore().scan()
    width = max(len(e.preset.name) for e in entries)
    for e in entries:
        source = "user (shadows built-in)" if e.shadows_builtin else e.source
        default = " (default)" if e.preset.name == DEFAULT_PRESET else ""
        print(f"{e.preset.name:<{width}}  {e.preset.task:<8}  {source}{default}")
    for problem in problems:
        print(f"andon: skipped {problem}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    preset = PresetStore().load(args.name)
    print(f"name         {preset.name}")
    print(f"task         {preset.task}")
    if preset.model:
        print(f"model        {preset.model}")
    print("description")
    _print_indented(preset.description.strip())
    print("system")
    _print_indented(preset.system or "(none)")
    print("parameters")
    changed = preset.parameters.changed(DEFAULTS)
    _print_indented("\n".join(parameter_lines(preset.parameters.to_plain(sorted(changed)))))
    if preset.messages:  # Modelfile MESSAGE lines, as /show modelfile and `presets export` write them
        print("example exchange (sent after the system prompt, before the chat)")
        _print_indented("\n".join(f"{m.role}: {m.content}" for m in preset.messages))
    if preset.template:
        print("template")
        _print_indented(textwrap.fill(f"{TEMPLATE_UNUSED} (`andon presets export` prints it)", 76))
    return 0


def _print_indented(text: str) -> None:
    """Text a preset holds, each line indented (nothing for no text)."""
    for line in text.split("\n") if text else []:
        print(f"  {line}".rstrip() if line.strip() else "")


def cmd_save(args: argparse.Namespace) -> int:
    store = PresetStore()
    _valid(args.name)
    base = store.load(args.base or (args.name if args.name in store.names() else DEFAULT_PRESET))
    params = apply(base.parameters, parse_assignments([resolve_assignment(s) for s in args.set]))
    check_usable(params)
    fields = {"name": args.name}
    if args.system is not None:
        fields["system"] = args.system
    if args.description is not None:
        fields["description"] = args.description
    path = store.save(base.with_parameters(params, **fields))
    print(f"saved preset {args.name!r} to {path}")
    return 0


def check_usable(params: Parameters, lines: Mapping[str, int] | None = None) -> None:
    """Refuse what `/set` refuses beyond a value's range (`check_change`): a format or grammar that
    cannot constrain a reply, a draft model that cannot be found or is not a GGUF file. `presets save`
    and import both ask; for a Modelfile, `lines` (where each parameter was set) names the line."""
    names = ("format", "draft") if lines is None else [n for n in ("format", "grammar", "draft") if n in lines]
    for name in names:  # format: grammar_for checks format and grammar together
        try:
            check_change(params, {name: getattr(params, name)})
        except (GrammarError, DraftModelError) as exc:
            if lines is None:
                raise
            raise ModelfileError(f"line {lines[name]}: {exc}") from None


def _valid(name: str) -> bool:
    try:
        check_name(name)
    except ValueError as exc:
        raise PresetError(str(exc)) from None
    return True


def cmd_delete(args: argparse.Namespace) -> int:
    store = PresetStore()
    path = store.delete(args.name)
    back = " (the built-in preset of that name is back)" if args.name in store.builtin_names() else ""
    print(f"deleted {path}{back}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.modelfile).expanduser()
    text = _read_modelfile(path)
    name = args.name or path.stem.replace(" ", "-")
    if name.lower() == "modelfile":
        name = path.parent.name or "imported"
    _valid(name)
    folder = path.parent.absolute()
    try:
        imported = parse_modelfile(text, resolve_from=lambda arg: _model_file(arg, folder))
        preset = imported.to_preset(name)
        check_usable(preset.parameters, imported.lines)
    except ModelfileError as exc:
        raise ModelfileError(f"{path}: {exc}") from None
    for note in imported.notes:
        print(f"andon: {path}: {note}", file=sys.stderr)
    saved = PresetStore().save(preset)
    print(f"imported {path} as preset {name!r} ({saved})")
    return 0


def _read_modelfile(path: Path) -> str:
    """A Modelfile's text: UTF-8 (TextError otherwise), from a file or a pipe, at most MAX_MODELFILE_BYTES."""
    try:
        with path.open("rb") as fh:
            kind = os.fstat(fh.fileno()).st_mode
            if not (stat.S_ISREG(kind) or stat.S_ISFIFO(kind)):  # a device never ends (/dev/zero)
                raise ModelfileError(f"cannot import {path}: it is not a regular file (give the path of a Modelfile)")
            data = fh.read(MAX_MODELFILE_BYTES + 1)
    except OSError as exc:
        raise ModelfileError(f"cannot import {path}: {os_reason(exc, path)} (give the path of a Modelfile)") from None
    if len(data) > MAX_MODELFILE_BYTES:
        raise ModelfileError(
            f"cannot import {path}: it is over {MAX_MODELFILE_BYTES >> 20} MiB, too big for a Modelfile "
            "(a Modelfile is text: FROM, PARAMETER and SYSTEM lines)"
        )
    return decode(data, str(path))


def _model_file(arg: str, folder: Path) -> str | None:
    """A Modelfile's FROM or DRAFT as the preset keeps it; a file must be a GGUF model (as `--model` needs)."""
    model = resolve_from(arg, folder)
    if model is not None and os.path.isabs(model):
        try:
            check_gguf(model)
        except ModelPathError as exc:
            raise ModelfileError(str(exc)) from None
    return model


def cmd_export(args: argparse.Namespace) -> int:
    preset = PresetStore().load(args.name)
    notes: list[str] = []
    text = export_modelfile(preset, default_model=f"./{EMBEDDED_NAME}", notes=notes)
    for note in notes:  # text only andon reads back (Ollama's syntax cannot hold it)
        print(f"andon: warning: {note}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


def cmd_parameters(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(parameter_table("markdown"))
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(parameter_table("text", width=width))
    return 0
