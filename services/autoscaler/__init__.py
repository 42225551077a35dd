"""The autoscaler: how many replicas each function should have, and why."""
