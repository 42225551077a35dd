"""Prometheus metrics of the bus, shared by every service that uses it."""

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class SentEvents(Collector):
    """Events handed to the producer, per topic: a plain tally on the hot path (no lock),
    read by Prometheus at scrape time."""

    def __init__(self) -> None:
        self.by_topic: Tally[str] = Tally()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "shoal_bus_events_sent", "Events handed to the Kafka producer", labels=["topic"]
        )
        for topic, count in self.by_topic.items():
            family.add_metric([topic], count)
        yield family


EVENTS_SENT = SentEvents()
REGISTRY.register(EVENTS_SENT)
EVENTS_CONSUMED = Counter(
    "shoal_bus_events_consumed_total", "Events handled", ["consumer", "topic"]
)
HANDLER_ERRORS = Counter(
    "shoal_bus_handler_errors_total", "Handler calls that raised", ["consumer"]
)
DEAD_LETTERS = Counter(
    "shoal_bus_dead_letters_total", "Messages sent to the dead-letter topic", ["consumer", "topic"]
)
CONSUMER_LAG = Gauge(
    "shoal_bus_consumer_lag", "Messages behind the high watermark", ["consumer", "topic"]
)
