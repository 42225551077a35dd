"""Shoal's one shared contract: the envelope, payload types, topics and the bus."""
