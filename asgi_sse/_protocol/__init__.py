"""The protocol layer, sans-IO: the wire encoder and the WHATWG parser, typed events,
event ids and cursors, the hub's frames with their id line, the `reset` event, what a
stream may yield, and every exception of the package. Imports `_util` only, and nothing
async (no anyio, asyncio, trio or asgiref): it is tested byte for byte.
"""
