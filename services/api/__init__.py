"""The api: the only HTTP front door, for the control plane (/v1) and function calls (/fn)."""
