"""Synchronous worker processes that run consumers.

The worker arrives with issue 4; until then this package is intentionally empty.
"""
