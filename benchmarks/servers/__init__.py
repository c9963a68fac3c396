"""The benchmarked servers: one module per implementation, each exposing an ASGI `app`.

Every server serves the same endpoints with the same payload (see `_common`):
`/burst?n=`, `/fanout`, `/idle` and `/stats`. Only the SSE layer differs.
"""
