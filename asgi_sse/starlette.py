"""The streaming response as a Starlette `Response`, for Starlette and FastAPI routes.

FastAPI passes a route's return value through untouched only when it is an instance of
Starlette's `Response`; anything else it serialises as JSON. This adapter is such an
instance and delegates the actual streaming to the pure-ASGI core, so the core never
imports Starlette. Only this module does: import it only where Starlette is installed.
"""

from ._integrations.starlette import EventSourceResponse

__all__ = ("EventSourceResponse",)
