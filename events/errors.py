"""Errors of the event contract, catchable by type; each says whether a retry can help."""


class ShoalEventError(Exception):
    """Base of every error raised by the events package."""

    retriable = False


class DecodeError(ShoalEventError):
    """A message is not a valid Shoal event; it belongs on the dead-letter topic."""


class UnknownEventType(DecodeError):
    """The message's CloudEvents type names no event this version knows."""


class SchemaVersionMismatch(DecodeError):
    """The payload was written with a schema major version this reader cannot read."""


class BusUnavailable(ShoalEventError):
    """The Kafka cluster could not be reached within the configured time."""

    retriable = True


class TopicNotReady(ShoalEventError):
    """A topic is not (yet) in the cluster's metadata with a leader for every partition."""

    retriable = True
