"""What every Shoal service shares: settings, structured logs, the process runtime."""
