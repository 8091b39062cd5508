"""Routing tables that map channels and message filters to consumers.

`route`, `route_class` and `include` arrive with the worker (issue 4); until
then this package is intentionally empty.
"""
