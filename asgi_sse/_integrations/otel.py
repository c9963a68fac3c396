"""The implementation of `asgi_sse.otel` (whose docstring is the user's guide)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

from .._hub.backend import BackendCounters
from .._hub.hub import Hub
from .._hub.observer import HubObserver, SubscriptionEnd, SubscriptionStart
from .._protocol.reset import ResetReason
from .._server.observer import StreamObserver
from .._server.state import CloseReason
from .._util.checks import is_count

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImportError(
        "asgi_sse.otel needs opentelemetry-api: pip install 'asgi-sse[otel]'"
    ) from exc

from .._version import __version__

__all__ = ("Labeler", "RouteLabeler", "SSEMetrics")

Labeler: TypeAlias = Mapping[str, str] | Callable[[str], str | None]
"""What ``topics=`` takes: topic name -> label, as a mapping or a function (None: no
label)."""

RouteLabeler: TypeAlias = Mapping[str, str] | Callable[[Mapping[str, Any]], str | None]
"""What ``routes=`` takes: ``scope["path"]`` -> label as a mapping, or a function of the
whole ASGI scope (None: no label)."""

_Counting = TypeVar("_Counting", bound=BackendCounters)


class SSEMetrics(StreamObserver, HubObserver):
    """OpenTelemetry instruments fed by the response and hub hooks (see the module).

    Args:
        meter_provider: Where the instruments come from (the global one by default).
        topics: Topic name -> label (the ``topic`` attribute of the hub's
            instruments), as a mapping or a function (None: no label); a
            subscription to several topics gets their labels joined by commas.
        routes: ``scope["path"]`` -> label (the ``route`` attribute of the
            connections' instruments), as a mapping, or a function of the whole scope
            (None: no label).
        lag_every: One event in that many of each topic has its delivery lag measured
            (0: none).

    Raises:
        ValueError: for a ``lag_every`` that is not an int >= 0.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        topics: Labeler | None = None,
        routes: RouteLabeler | None = None,
        lag_every: int = 100,
    ) -> None:
        if not is_count(lag_every, minimum=0):
            raise ValueError(f"lag_every must be an int >= 0, got {lag_every!r}")
        self.lag_every = lag_every
        """One event in that many of each topic has its delivery lag measured."""
        self._topics = topics
        self._routes = routes
        meter = otel_metrics.get_meter("asgi_sse", __version__, meter_provider=meter_provider)
        self._meter = meter
        self._open = meter.create_up_down_counter(
            "asgi_sse.connections.open", unit="{connection}", description="Open event streams"
        )
        self._closed = meter.create_counter(
            "asgi_sse.connections.closed",
            unit="{connection}",
            description="Event streams ended, by reason",
        )
        self._duration = meter.create_histogram(
            "asgi_sse.connection.duration", unit="s", description="How long streams lasted"
        )
        self._events = meter.create_counter(
            "asgi_sse.events.sent", unit="{event}", description="Events sent (at each end)"
        )
        self._bytes = meter.create_counter(
            "asgi_sse.bytes.sent", unit="By", description="Bytes of events sent (at each end)"
        )
        self._published = meter.create_counter(
            "asgi_sse.hub.published", unit="{event}", description="Events published to a hub"
        )
        self._published_size = meter.create_counter(
            "asgi_sse.hub.published.size", unit="By", description="Bytes of events published"
        )
        self._subscriptions = meter.create_counter(
            "asgi_sse.hub.subscriptions",
            unit="{subscription}",
            description="Hub subscriptions started, by how they resumed",
        )
        self._ended = meter.create_counter(
            "asgi_sse.hub.subscriptions.ended",
            unit="{subscription}",
            description="Hub subscriptions ended, by reason",
        )
        self._resets = meter.create_counter(
            "asgi_sse.hub.resets", unit="{event}", description="Reset events sent, by reason"
        )
        self._lag = meter.create_histogram(
            "asgi_sse.hub.delivery_lag",
            unit="s",
            description="From publish to a subscriber taking the event (sampled)",
        )
        self._hubs: list[Hub] = []
        self._backends: list[BackendCounters] = []
        self._hub_instruments = False
        self._backend_instruments = False

    # -- labels -------------------------------------------------------------------------

    def _topic_attributes(self, topics: Iterable[str]) -> dict[str, str]:
        labeler = self._topics
        if labeler is None:
            return {}
        labels = []
        for topic in topics:
            label = labeler.get(topic) if isinstance(labeler, Mapping) else labeler(topic)
            if label is not None:
                labels.append(label)
        return {"topic": ",".join(sorted(set(labels)))} if labels else {}

    def _route_attributes(self, scope: Mapping[str, Any]) -> dict[str, str]:
        labeler = self._routes
        if labeler is None:
            return {}
        if isinstance(labeler, Mapping):
            label = labeler.get(str(scope.get("path", "")))
        else:
            label = labeler(scope)
        return {} if label is None else {"route": label}

    # -- responses (StreamObserver) -------------------------------------------------------

    def on_open(self, scope: Mapping[str, Any]) -> None:
        """Count an open connection (``connections.open``)."""
        self._open.add(1, self._route_attributes(scope))

    def on_close(
        self,
        scope: Mapping[str, Any],
        reason: CloseReason,
        events: int,
        size: int,
        seconds: float,
    ) -> None:
        """Record a connection's end: ``connections.open`` down, ``connections.closed``
        by reason, ``connection.duration``, ``events.sent`` and ``bytes.sent``."""
        attributes = self._route_attributes(scope)
        self._open.add(-1, attributes)
        self._closed.add(1, {**attributes, "reason": reason})
        self._duration.record(seconds, attributes)
        if events:
            self._events.add(events, attributes)
        if size:
            self._bytes.add(size, attributes)

    # -- hubs (HubObserver) ---------------------------------------------------------------

    def on_publish(self, topic: str, event_id: str, size: int) -> None:
        """Count a publish (``hub.published``, ``hub.published.size``)."""
        attributes = self._topic_attributes((topic,))
        self._published.add(1, attributes)
        self._published_size.add(size, attributes)

    def on_subscribe(self, topics: tuple[str, ...], how: SubscriptionStart) -> None:
        """Count a subscription, by how it started (``hub.subscriptions``)."""
        self._subscriptions.add(1, {**self._topic_attributes(topics), "how": how})

    def on_reset(self, topics: tuple[str, ...], reason: ResetReason) -> None:
        """Count a `Reset`, by reason (``hub.resets``)."""
        self._resets.add(1, {**self._topic_attributes(topics), "reason": reason})

    def on_end(
        self, topics: tuple[str, ...], reason: SubscriptionEnd, events: int, size: int
    ) -> None:
        """Count a subscription's end, by reason (``hub.subscriptions.ended``)."""
        self._ended.add(1, {**self._topic_attributes(topics), "reason": reason})

    def on_lag(self, topic: str, seconds: float) -> None:
        """Record a sampled delivery lag (``hub.delivery_lag``; a negative one, from
        clocks apart, as 0)."""
        self._lag.record(max(0.0, seconds), self._topic_attributes((topic,)))

    # -- observed instruments -------------------------------------------------------------

    def instrument_hub(self, hub: Hub) -> Hub:
        """Make this the hub's observer and observe its live counters (subscribers,
        topics, delivered events and bytes), summed over every hub instrumented.

        Returns:
            ``hub``.
        """
        hub.observer = self
        self._hubs.append(hub)
        if not self._hub_instruments:
            self._hub_instruments = True
            meter = self._meter
            meter.create_observable_up_down_counter(
                "asgi_sse.hub.subscribers",
                callbacks=[self._observe_hubs("subscribers")],
                unit="{subscriber}",
                description="Open hub subscriptions",
            )
            meter.create_observable_up_down_counter(
                "asgi_sse.hub.topics",
                callbacks=[self._observe_hubs("topics")],
                unit="{topic}",
                description="Topics a hub holds",
            )
            meter.create_observable_counter(
                "asgi_sse.hub.delivered.events",
                callbacks=[self._observe_hubs("delivered_events")],
                unit="{event}",
                description="Events handed to subscribers",
            )
            meter.create_observable_counter(
                "asgi_sse.hub.delivered.bytes",
                callbacks=[self._observe_hubs("delivered_bytes")],
                unit="By",
                description="Bytes handed to subscribers",
            )
        return hub

    def _observe_hubs(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            total = sum(getattr(hub.stats(), field) for hub in self._hubs)
            return [Observation(total)]

        return observe

    def instrument_backend(self, backend: _Counting) -> _Counting:
        """Observe a backend's ``reconnects`` and ``gaps`` counters (its
        ``BackendCounters``, which the Redis Streams backend has), summed over every
        backend instrumented.

        Returns:
            ``backend``.

        Raises:
            TypeError: the backend does not keep those counters (the memory backend),
                or one of them is not an int.
        """
        if not isinstance(backend, BackendCounters):
            msg = (
                f"{type(backend).__name__} keeps no fault counters (reconnects and gaps, "
                "as BackendCounters declares them): there is nothing to instrument"
            )
            raise TypeError(msg)
        for name, value in (("reconnects", backend.reconnects), ("gaps", backend.gaps)):
            if not isinstance(value, int):
                msg = f"{type(backend).__name__}.{name} is not an int counter: {value!r}"
                raise TypeError(msg)
        self._backends.append(backend)
        if not self._backend_instruments:
            self._backend_instruments = True
            self._meter.create_observable_counter(
                "asgi_sse.redis.reconnects",
                callbacks=[self._observe_backends(lambda backend: backend.reconnects)],
                unit="{reconnect}",
                description="Times the backend's readers reconnected to Redis",
            )
            self._meter.create_observable_counter(
                "asgi_sse.redis.gaps",
                callbacks=[self._observe_backends(lambda backend: backend.gaps)],
                unit="{gap}",
                description="Gaps met: events trimmed or lost before this process read them",
            )
        return backend

    def _observe_backends(
        self, counter: Callable[[BackendCounters], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(sum(counter(backend) for backend in self._backends))]

        return observe
