"""Typing names newer than Python 3.10, importable at run time on every version the
package supports: public signatures use them, and `typing.get_type_hints` (FastAPI,
pydantic's ``validate_call``, typeguard) must resolve those signatures.

Standard library only, and ``typing_extensions`` on 3.10, which is always installed
there: pydantic and anyio, both dependencies, require it on 3.10.
"""

from __future__ import annotations

import sys

__all__ = ("Self", "Unpack")

if sys.version_info >= (3, 11):
    from typing import Self, Unpack
else:  # pragma: no cover - the tests run on 3.11+; typing_extensions: see the module
    from typing_extensions import Self, Unpack
