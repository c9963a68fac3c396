"""Stream combinators on anyio: `merge()`, `buffered()` and `resumable_merge()`.
Imports `_util` and `_protocol`; never the server or the hub.
"""
