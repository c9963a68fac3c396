"""The server layer: one response's lifecycle (options, connection and its states,
watcher, pump, response), the endpoint app, the middleware and graceful shutdown.
Imports `_util`, `_protocol` and `_streams`; never the hub, a framework or an extra.
"""
