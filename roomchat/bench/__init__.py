"""`roomchat bench`: measure fan-out over any transport that offers a bench client.

Kept empty so the CLI imports nothing heavy: the bench client interface is in
`roomchat.bench.clients`, the command in `roomchat.bench.command`.
"""
