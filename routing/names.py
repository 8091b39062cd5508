"""`name_that_thing`: a readable dotted name for a consumer, a class or anything else (Channels 1.x's helper)."""

from __future__ import annotations

import types
from typing import Any


def name_that_thing(thing: Any) -> str:
    """`module.qualname` of a function, method or class; for anything else, of its class.

    As Channels 1.x's `channels.utils.name_that_thing`, minus its Python 2
    branches (a bound method is named `module.Class.method`); a mock is
    `<mock>` (asking a mock for attributes invents them).
    """
    if hasattr(thing, "mock_calls"):
        return "<mock>"
    if isinstance(thing, (types.MethodType, types.BuiltinMethodType)) and hasattr(thing, "__func__"):
        thing = thing.__func__
    if isinstance(thing, (type, types.FunctionType, types.BuiltinFunctionType)):
        module = getattr(thing, "__module__", None)
        name = getattr(thing, "__qualname__", None) or thing.__name__
        return f"{module}.{name}" if module else name
    return name_that_thing(type(thing))
