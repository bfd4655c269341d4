"""Placeholder: the Redis backend is being written."""
