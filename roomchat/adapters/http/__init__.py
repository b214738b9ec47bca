"""What every HTTP adapter shares: the uvicorn server and its request guard,
server-sent event streams, request bodies, contract errors and metrics.

Modules: `server` (serve_asgi, bind), `guard` (bounds on reading a request),
`sse` (event streams and their fast path), `bodies` (bounded JSON bodies and
message responses), `errors` (domain errors as the contract's JSON), `metrics`.
"""
