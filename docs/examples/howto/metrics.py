"""OpenTelemetry metrics of the news hub and its streams."""

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from asgi_sse import GracefulShutdown, Hub, SSEEndpoint, SSERequest, Subscription
from asgi_sse.otel import SSEMetrics

reader = InMemoryMetricReader()  # in an app: your exporter's reader (OTLP, Prometheus...)
provider = MeterProvider(metric_readers=[reader])

metrics = SSEMetrics(provider, topics={"news": "news"}, routes={"/news": "news"})
hub = metrics.instrument_hub(Hub())  # the hub's counters, subscribers and topics


def events(request: SSERequest) -> Subscription:  # GET /news
    return hub.subscribe(request.path.strip("/"), last_event_id=request.last_event_id)


# observer=: every response is counted: opened, closed (by reason), events and bytes sent.
app = GracefulShutdown(hub.lifespan(SSEEndpoint(events, observer=metrics)))
