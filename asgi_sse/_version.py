__version__ = "0.1.0"
"""The version of asgi-sse (PEP 440); the package build reads it from here."""
