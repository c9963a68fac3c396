"""OpenTelemetry metrics for event streams, hubs and the Redis backend.

Needs ``opentelemetry-api`` only (``pip install 'asgi-sse[otel]'``); the SDK (or any
other implementation) is the application's choice, as OpenTelemetry intends:

```python
metrics = SSEMetrics()                    # the global MeterProvider
hub = Hub(observer=metrics)               # or metrics.instrument_hub(hub)
app = SSEEndpoint(handler, observer=metrics)
metrics.instrument_backend(backend)       # a RedisStreamsBackend's reconnects, gaps
```

`SSEMetrics` is a `StreamObserver` and a `HubObserver`: it is called when a response
opens and closes and per publish and per subscription, never per event per subscriber
(the delivery lag is sampled: one event in ``lag_every``). Without an observer nothing
of this runs.

Instruments (``asgi_sse.`` prefix):

* ``connections.open`` (up-down counter), ``connections.closed`` (counter, by
  ``reason``: ``stream_end``, ``client_left``, ``send_timeout``, ``shutdown``,
  ``stream_error``, ``send_failed``, ``server_cancelled``, ``dropped``), ``connection.duration``
  (histogram, s), ``events.sent`` and ``bytes.sent`` (counters, added when each
  response ends);
* ``hub.published`` and ``hub.published.size`` (counters), ``hub.subscriptions``
  (counter, by ``how``: ``live``, ``replay``, ``earliest``, ``reset``, ``closed``),
  ``hub.subscriptions.ended`` (counter, by ``reason``: ``end``, ``closed``,
  ``overflow``, ``stopped``, ``dropped``), ``hub.resets`` (counter, by ``reason``),
  ``hub.delivery_lag`` (histogram, s, sampled); with `instrument_hub`:
  ``hub.subscribers`` and ``hub.topics`` (observed), ``hub.delivered.events`` and
  ``hub.delivered.bytes`` (observed counters, live);
* with `instrument_backend`: ``redis.reconnects`` and ``redis.gaps`` (observed counters).

Topic names and paths are never attributes (their number is unbounded) unless you map
them: ``topics=`` and ``routes=`` are a mapping or a function from a topic name or an
ASGI scope to a label (None: no label).
"""

from ._integrations.otel import Labeler, RouteLabeler, SSEMetrics

__all__ = ("Labeler", "RouteLabeler", "SSEMetrics")
