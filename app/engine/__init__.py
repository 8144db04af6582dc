"""All that runs in the engine process: the model and its KV-cached context, the sampler chain's
decoding loop, grammars and schemas, speculative decoding, RPC placement, the inspector's
computation, and the server that the app and the commands reach it through (`server.py`), with its
client (`client.py`). `engine.py` is the facade, `Engine`. Nothing here imports the chat, the CLI or
the app."""
