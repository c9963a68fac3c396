"""Stream a language model's tokens: POST a prompt, get typed tokens, then done."""

import json
from collections.abc import AsyncGenerator, AsyncIterator

import anyio
from pydantic import BaseModel

from asgi_sse import BaseEvent, SSEEndpoint, SSERequest, buffered


class Token(BaseEvent[str]):  # event: token, data: "the text"
    pass


class Usage(BaseModel):
    tokens: int


class Done(BaseEvent[Usage]):  # event: done, once, at the end
    pass


async def generate(prompt: str) -> AsyncGenerator[str, None]:
    """Stands in for the model's client (an SDK's async stream of text deltas)."""
    for word in f"You said: {prompt}".split(" "):
        await anyio.sleep(0.01)  # the model thinking
        yield word + " "


async def answer(prompt: str) -> AsyncIterator[Token | Done]:
    tokens = generate(prompt)
    count = 0
    try:
        async for text in tokens:
            count += 1
            yield Token(data=text)
        yield Done(data=Usage(tokens=count))
    finally:
        # The answer ended, or the client left mid-answer and the stream was cancelled:
        # stop the model either way. Shielded, because an await in a cancelled scope
        # would be cancelled at once (a real client's aclose() talks to the network).
        with anyio.CancelScope(shield=True):
            await tokens.aclose()


async def completions(request: SSERequest) -> AsyncIterator[Token | Done]:
    prompt = json.loads(await request.body())["prompt"]  # read before the stream starts
    # buffered(): the model runs up to 64 tokens ahead; what is ready goes out in one write.
    return buffered(answer(prompt), size=64)


app = SSEEndpoint(completions, methods=("POST",))
