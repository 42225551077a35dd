"""The healer: what is broken and what repairs it."""
