"""andon: an offline terminal assistant for GGUF models with a complete, inspectable sampler chain.

One installed package, three layers; each depends only on the ones above it in this list:

- `andon.samplers` (the repository's `samplers/`): the sampler chain in pure numpy. It knows
  nothing of llama.cpp, files or the UI.
- `andon.presets` (`presets/`): the `Parameters` model, presets as files, Ollama Modelfiles and
  the `set parameter` / `show parameters` commands.
- `andon.app` (`app/`): the llama.cpp engine, the chat history, the Textual app and the CLI.

The folders stay at the top of the repository; setuptools' `package-dir` installs them under
this package. `python -m andon` runs the command line.
"""

from andon import _sigint

_sigint.quiet_if_the_program()  # first of all: Ctrl-C while andon starts is a quiet exit (status 130)

__version__ = "0.1.0"
