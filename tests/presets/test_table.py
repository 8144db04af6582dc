"""The users' parameter table: generated from the specs, the same in README.md and on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from andon.presets.parameters import ALL_SPECS
from andon.presets.table import BEGIN, END, REGENERATE, groups, parameter_table, readme_block, with_table
from andon.samplers import SAMPLER_NAMES, parameter_groups

README = Path(__file__).resolve().parents[2] / "README.md"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_readme_holds_the_generated_table():
    block = readme_block(README.read_text("utf-8"))
    assert block is not None, f"README.md has no {BEGIN} ... {END} block"
    assert block == parameter_table("markdown"), f"README.md's parameter table is out of date: run `{REGENERATE}`"


def test_every_parameter_is_listed_once_sampling_in_chain_order():
    listed = [spec.name for _, specs in groups() for spec in specs]
    assert sorted(listed) == sorted(ALL_SPECS) and len(listed) == len(set(listed))
    stages = [name for name, _ in parameter_groups()]
    assert stages == ["logit_bias", *SAMPLER_NAMES, "mirostat", "chain"]
    sampling = [spec.name for spec in groups()[0][1]]
    assert sampling.index("repeat_penalty") < sampling.index("top_k") < sampling.index("temperature")
    assert sampling[:1] == ["logit_bias"] and sampling[-3:] == ["min_keep", "samplers", "seed"]


def test_each_help_is_one_short_line_a_panel_can_show():
    for spec in ALL_SPECS.values():
        assert "\n" not in spec.description and spec.description.endswith("."), spec.name
        assert 20 <= len(spec.description) <= 110, spec.name


def test_presets_parameters_prints_every_name_default_and_help():
    r = run("-m", "andon", "presets", "parameters")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    temperature = next(line for line in lines if line.split()[:1] == ["temperature"])
    assert temperature.split()[1] == "0.8" and "a number >= 0" in temperature
    for spec in ALL_SPECS.values():
        assert any(line.split()[:1] == [spec.name] for line in lines), spec.name
        assert spec.description in r.stdout
    assert run("-m", "andon", "presets", "parameters", "--markdown").stdout == parameter_table("markdown")


def test_the_regenerate_command_rewrites_only_the_block(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text(f"# title\n\nbefore\n\n{BEGIN}\n| old | table |\n{END}\n\nafter\n", "utf-8")
    r = run("-m", "andon.presets.table", "--write", str(stale))
    assert r.returncode == 0, r.stderr
    text = stale.read_text("utf-8")
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert readme_block(text) == parameter_table("markdown") and with_table(text) == text
    missing = tmp_path / "other.md"
    missing.write_text("no markers\n", "utf-8")
    r = run("-m", "andon.presets.table", "--write", str(missing))
    assert r.returncode == 2 and "no <!-- parameters:begin -->" in r.stderr
    assert missing.read_text("utf-8") == "no markers\n"


def test_the_terminal_layout_fits_80_columns_and_loses_no_word():
    wrapped = parameter_table("text", width=80)
    assert max(len(line) for line in wrapped.splitlines()) <= 80
    assert wrapped.split() == parameter_table("text").split()
