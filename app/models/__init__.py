"""The GGUF models on this machine: where they are (`sources.py`: the embedded model, Ollama's store,
the Hugging Face cache, LM Studio, andon's folder), what a file holds (`gguf_header.py`), whether
llama.cpp can load it (`gguf_limits.py`, `files.py`), and finding one by name (`catalog.py`)."""
