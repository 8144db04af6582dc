"""What every command resolves first: the preset, the parameters, the system prompt, the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from andon.app.engine.engine import Message, messages_for
from andon.app.engine.speculative import check_draft
from andon.app.engine.structured import grammar_for, resolve_assignment
from andon.app.models.catalog import model_for
from andon.presets.commands import apply, parse_assignments
from andon.presets.modelfile import with_model_defaults
from andon.presets.parameters import ALL_SPECS, Parameters
from andon.presets.preset import Preset
from andon.presets.store import DEFAULT_PRESET, PresetStore


@dataclass(frozen=True)
class Settings:
    preset: Preset
    params: Parameters
    system: str
    model_path: Path
    notes: tuple[str, ...] = ()  # what andon left out of the model's own defaults, and why
    warnings: tuple[str, ...] = ()  # allowed, but worth a line on standard error (num_ctx past training)

    def messages(self, prompt: str) -> list[Message]:
        """A one-shot prompt's messages: the system prompt, the preset's example exchange (its Modelfile's
        MESSAGE lines), then the prompt."""
        return messages_for(self.system, self.preset.example_messages(), prompt)  # type: ignore[arg-type]


def model_path_for(model: str | None, preset: Preset | None = None) -> Path:
    """--model (a path or a name from `andon models`), else the preset's model (its FROM), else the
    embedded model; a model that cannot be found is an error (ModelPathError), never another model."""
    return model_for(model, preset).load_path()


def resolve_settings(
    preset_name: str | None,
    sets: Sequence[str] = (),
    system: str | None = None,
    model: str | None = None,
    store: PresetStore | None = None,
) -> Settings:
    store = store or PresetStore()
    preset = store.load(preset_name or DEFAULT_PRESET)
    model_entry = model_for(model, preset)
    preset = with_model_defaults(preset, model_entry.defaults)  # an Ollama model's params and system
    params = apply(preset.parameters, parse_assignments([resolve_assignment(s) for s in sets]))
    grammar_for(params)  # a bad grammar or schema is refused before the model loads
    check_draft(params)  # so is a draft model that cannot be found
    path = model_entry.load_path()
    warning = context_warning(params.num_ctx, trained_context(path), model_entry.name)
    return Settings(
        preset=preset,
        params=params,
        system=preset.system if system is None else system,
        model_path=path,
        notes=tuple(model_entry.defaults.notes) if model_entry.defaults else (),
        warnings=(warning,) if warning else (),
    )


def trained_context(path: Path) -> int | None:
    """The context length the model was trained on (its GGUF header), None where it cannot be read."""
    from andon.app.engine import llama_log
    from andon.app.models.files import ModelPathError, read_gguf_info

    llama_log.install(False)  # a broken header is said once, by the load, not by llama.cpp's log here
    try:
        return read_gguf_info(path).context_length
    except ModelPathError:
        return None  # loading the model says what is wrong with the file


def context_warning(num_ctx: int, trained: int | None, model: str) -> str | None:
    """The line saying that num_ctx is past the model's trained context (allowed, as in Ollama).

    A header that gives 0 says nothing about the training (llama.cpp reads it as unknown too): no line.
    Below the least num_ctx allowed, the context cannot be made to fit: the advice is to keep chats short.
    """
    if not trained or num_ctx <= trained:
        return None
    least = ALL_SPECS["num_ctx"].minimum
    advice = (
        f"set num_ctx {trained} or less to stay within it"
        if least is None or trained >= least
        else f"num_ctx cannot be below {least:g}, so keep conversations under {trained} tokens"
    )
    return (
        f"num_ctx {num_ctx} is above the {trained} tokens {model} was trained on: it is allowed, but past "
        f"{trained} tokens of conversation its replies may lose track or degrade ({advice})"
    )
