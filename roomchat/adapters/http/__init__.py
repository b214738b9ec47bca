"""What every HTTP adapter shares: the uvicorn server and its request guard,
server-sent event streams, the WebSocket, request bodies, contract errors and metrics.

Modules: `server` (serve_asgi, bind), `guard` (bounds on reading a request),
`sse` (event streams and their fast path), `websocket` (many rooms on one
connection; `ws_frames` its wire format, `ws_protocol` uvicorn's protocol with a
raw write), `flushing` (one write per marked stream per loop turn), `bodies`
(bounded JSON bodies and message responses), `errors` (domain errors as the
contract's JSON), `identity`, `metrics`.
"""
