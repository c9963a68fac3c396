"""A service that follows another's event stream, typed, resuming where it stopped."""

import httpx
from pydantic import BaseModel

from asgi_sse import BaseEvent, Reset
from asgi_sse.client import EventSource


class Story(BaseModel):
    title: str


class Headline(BaseEvent[Story]):
    pass


class Correction(BaseEvent[Story]):
    pass


class NewsDesk:
    """What the follower keeps: the stories, and the id to resume from."""

    def __init__(self) -> None:
        self.stories: list[Story] = []
        self.last_seen = ""  # stored with the stories: where to resume after a restart

    async def refetch_everything(self) -> None:
        self.stories.clear()  # a real service reloads its state from the source here

    async def store(self, event: Headline | Correction) -> None:
        self.stories.append(event.data)
        self.last_seen = event.id if isinstance(event.id, str) else self.last_seen


async def follow_news(http: httpx.AsyncClient, desk: NewsDesk, *, count: int) -> None:
    """Store the next ``count`` stories from ``/news`` (a real follower loops forever)."""
    async with EventSource(
        "/news", events=(Headline, Correction), client=http, last_event_id=desk.last_seen
    ) as source:
        async for event in source:  # Headline | Correction | Reset | ParsedEvent
            if isinstance(event, Reset):  # the hub could not resume exactly
                await desk.refetch_everything()
            elif isinstance(event, (Headline, Correction)):
                await desk.store(event)
                if len(desk.stories) >= count:
                    return
