"""`andon serve`: Ollama's and OpenAI's HTTP APIs over andon's engines, for any client of either.

`catalog` names what a client may ask for (a model from `andon models`, or `NAME@PRESET`) and turns a
request into the settings a reply runs with; `engines` keeps one engine process per model with a
fair turn for each request; `ollama` and `openai` translate the two APIs to the engine's one
protocol and back; `http` is the server: its checks (Host, key, size, JSON) come before any route.
"""
