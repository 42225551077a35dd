"""The payload types, by what they are about; `events.types` gathers them."""
