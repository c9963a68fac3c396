"""The test tools behind `asgi_sse.testing`: the in-process streaming client, its
HTTP scope, and an httpx transport that streams (the only module here that imports
httpx). Imports `_util` and `_protocol`.
"""
