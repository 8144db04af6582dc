"""A preset: a named set of parameters and a system prompt made for one kind of task."""

from __future__ import annotations

import re
from typing import Any, Literal

from andon.presets.parameters import DEFAULTS, Parameters
from pydantic import BaseModel, ConfigDict, Field, field_validator

Task = Literal["factual", "creative", "code", "chat"]
Role = Literal["system", "user", "assistant"]  # a Modelfile MESSAGE's roles
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PresetError(Exception):
    """A preset that cannot be found, read, saved or deleted; the message says why."""


class PresetNameError(PresetError, ValueError):
    """A preset name that cannot be a file name (a ValueError too, so pydantic reports it as one)."""


def check_name(name: str) -> str:
    """The name, if it can name a preset file; PresetNameError (one line) otherwise."""
    if not NAME_PATTERN.fullmatch(name):
        raise PresetNameError(
            f"preset name {name!r} is not allowed (use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit)"
        )
    return name


class ExampleMessage(BaseModel):
    """One message of a preset's example exchange (a Modelfile's `MESSAGE ROLE TEXT`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="What the preset is called; also its file name.")
    description: str = Field("", description="Why its values fit its task, with sources.")
    task: Task = Field("chat", description="The kind of task it is made for.")
    system: str = Field("", description="The system prompt.")
    model: str | None = Field(None, description="The model it was made for (Modelfile FROM), if any.")
    parameters: Parameters = Field(default_factory=lambda: DEFAULTS)
    messages: tuple[ExampleMessage, ...] = Field(
        (), description="An example exchange (Modelfile MESSAGE lines), sent after the system prompt, before the chat."
    )
    template: str = Field(
        "", description="Ollama's TEMPLATE (a Go template), kept for export; andon uses the model's own chat template."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        return check_name(v)

    def to_document(self) -> dict[str, Any]:
        """What a preset file holds: only what differs from the defaults."""
        doc: dict[str, Any] = {}
        if self.description:
            doc["description"] = self.description
        doc["task"] = self.task
        if self.system:
            doc["system"] = self.system
        if self.model:
            doc["model"] = self.model
        changed = self.parameters.changed()
        if changed:
            doc["parameters"] = self.parameters.to_plain(sorted(changed))
        if self.messages:
            doc["messages"] = [m.model_dump() for m in self.messages]
        if self.template:
            doc["template"] = self.template
        return doc

    def example_messages(self) -> list[dict[str, str]]:
        """The example exchange as chat messages (role, content): after the system prompt, before the chat."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def with_parameters(self, params: Parameters, **fields: Any) -> Preset:
        return self.model_copy(update={"parameters": params, **fields})
