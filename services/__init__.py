"""Shoal's five services, what they share (common) and the local platform (local, cli)."""
