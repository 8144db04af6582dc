"""andon's application layer: the llama.cpp engine, chat history, the TUI and the CLI."""
