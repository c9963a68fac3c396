"""The AsyncAPI 3.0 document of the tutorial's streams."""

import json

from asgi_sse import Reset
from asgi_sse.schema import asyncapi

from chat import ChatMessage
from sse2 import Echo
from sse3 import ReverseEcho

document = asyncapi(
    {"/sse2": (Echo,), "/sse3": (Echo, ReverseEcho), "/chat": (ChatMessage, Reset)},
    title="The tutorial's streams",
    servers={"local": "http://127.0.0.1:8000"},
)

if __name__ == "__main__":
    print(json.dumps(document, indent=2))  # python asyncapi_doc.py > asyncapi.json
