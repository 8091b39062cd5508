"""Synchronous workers: pull messages from the channel layer, route them, run consumers."""

from .worker import Worker, WorkerGroup

__all__ = ["Worker", "WorkerGroup"]
