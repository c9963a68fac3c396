"""The hub: publish an event once, fan it out to every subscriber, resume exactly.

Its modules, from the bottom up (each imports only those above it, never the ASGI
response layer):

* ``observer`` - the counters, the metrics hooks, and the Literal words they use;
* ``log`` - one topic's log in this process (`TopicLog`), which owns its invariants;
* ``backend`` - the backend SPI (`HubBackend`) and its values; public as
  `asgi_sse.backends`;
* ``memory`` - the default backend (`MemoryBackend`);
* ``core`` - what the hub and its subscriptions share: the logs, counters, the stop;
* ``state``, ``resume``, ``subscription`` - one client's stream: its states, where it
  resumes, the frames it hands out;
* ``lifespan``, ``hub`` - the ASGI lifespan wrapper and the facade (`Hub`).

The Redis Streams backend is a sibling package (`asgi_sse._redis`), written against the
public SPI only.
"""
