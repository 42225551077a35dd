"""Prometheus metrics of the bus, shared by every service that uses it."""

from prometheus_client import Counter, Gauge

EVENTS_SENT = Counter(
    "shoal_bus_events_sent_total", "Events handed to the Kafka producer", ["topic"]
)
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
