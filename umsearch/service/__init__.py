"""The resident service: one long-lived process per index that keeps the index open and the model loaded.

- `paths` — where a service of an index lives (its private folder, socket, log and locks);
- `protocol` — the JSON wire form of queries and results (exact floats), and the handshake;
- `client` — the light client (standard library only: no torch, numpy, starlette or textual);
- `route` — what `query`, `similar`, `embed` and the TUI do: use the running service, answer from the index
  alone, start a service, or stay in-process;
- `server` — the server itself (Starlette on uvicorn); only `umsearch serve` and `umsearch watch` import it.

Importing this package imports nothing heavy.
"""
