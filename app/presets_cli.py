"""`andon presets ...`: list, show, save, delete, import and export presets."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from andon.app.model_files import EMBEDDED_NAME
from andon.app.models import resolve_from
from andon.app.speculative import check_draft
from andon.app.structured import grammar_for, resolve_assignment
from andon.presets.commands import apply, parameter_lines, parse_assignments
from andon.presets.modelfile import ModelfileError, export_modelfile, parse_modelfile
from andon.presets.parameters import DEFAULTS
from andon.presets.preset import check_name
from andon.presets.store import DEFAULT_PRESET, PresetError, PresetStore
from andon.presets.table import parameter_table
from andon.presets.text import read_text


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
    for line in preset.description.strip().splitlines():
        print(f"  {line}")
    print("system")
    print(f"  {preset.system}" if preset.system else "  (none)")
    print("parameters")
    changed = preset.parameters.changed(DEFAULTS)
    for line in parameter_lines(preset.parameters.to_plain(sorted(changed))):
        print(f"  {line}")
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    store = PresetStore()
    _valid(args.name)
    base = store.load(args.base or (args.name if args.name in store.names() else DEFAULT_PRESET))
    params = apply(base.parameters, parse_assignments([resolve_assignment(s) for s in args.set]))
    grammar_for(params)  # a preset whose format or grammar cannot be used is not saved
    check_draft(params)  # nor one whose draft model cannot be found
    fields = {"name": args.name}
    if args.system is not None:
        fields["system"] = args.system
    if args.description is not None:
        fields["description"] = args.description
    path = store.save(base.with_parameters(params, **fields))
    print(f"saved preset {args.name!r} to {path}")
    return 0


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
    try:
        text = read_text(path)  # TextError (one line) if it is not UTF-8
    except OSError as exc:
        raise ModelfileError(f"cannot read {path}: {exc.strerror or exc}") from None
    name = args.name or path.stem.replace(" ", "-")
    if name.lower() == "modelfile":
        name = path.parent.name or "imported"
    _valid(name)
    try:
        imported = parse_modelfile(text, resolve_from=lambda arg: resolve_from(arg, path.parent.absolute()))
    except ModelfileError as exc:
        raise ModelfileError(f"{path}: {exc}") from None
    for note in imported.notes:
        print(f"andon: {path}: {note}", file=sys.stderr)
    saved = PresetStore().save(imported.to_preset(name))
    print(f"imported {path} as preset {name!r} ({saved})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    preset = PresetStore().load(args.name)
    sys.stdout.write(export_modelfile(preset, default_model=f"./{EMBEDDED_NAME}"))
    return 0


def cmd_parameters(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(parameter_table("markdown"))
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(parameter_table("text", width=width))
    return 0
