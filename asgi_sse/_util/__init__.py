"""The bottom layer: small helpers every other layer may use (ASGI type aliases, the
lifespan answer, closing an iteration, unwrapping an ExceptionGroup, a count check,
typing names newer than Python 3.10). Imports nothing else from the package.
"""
