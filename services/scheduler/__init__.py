"""The scheduler: which node runs which replica, rollouts and node drains."""
