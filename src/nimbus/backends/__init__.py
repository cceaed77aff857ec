"""Implementations of the service interfaces. Nothing is imported here: a backend's modules
load only when it is chosen."""
