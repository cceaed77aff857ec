"""Channels and edge: the HTTP gateway and the platform's admin API."""
