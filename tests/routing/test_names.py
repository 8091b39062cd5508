"""`name_that_thing` (Channels 1.x's `channels.utils.name_that_thing`), and route reprs that use it."""

from __future__ import annotations

from unittest import mock

from channels_core.utils import name_that_thing
from routing import route
from routing.names import name_that_thing as routing_name_that_thing


def consumer(message):
    pass


class Consumer:
    def method(self, message):
        pass

    @classmethod
    def class_method(cls, message):
        pass


def test_one_implementation():
    assert name_that_thing is routing_name_that_thing


def test_functions_classes_methods_and_instances():
    here = __name__
    assert name_that_thing(consumer) == f"{here}.consumer"
    assert name_that_thing(Consumer) == f"{here}.Consumer"
    assert name_that_thing(Consumer.method) == f"{here}.Consumer.method"
    assert name_that_thing(Consumer().method) == f"{here}.Consumer.method"
    assert name_that_thing(Consumer.class_method) == f"{here}.Consumer.class_method"
    assert name_that_thing(Consumer()) == f"{here}.Consumer"
    assert name_that_thing(len) == "builtins.len"
    assert name_that_thing(3) == "builtins.int"


def test_a_mock_is_not_recursed_into():
    assert name_that_thing(mock.Mock()) == "<mock>"
    assert name_that_thing(mock.MagicMock().method) == "<mock>"


def test_route_repr_names_the_consumer():
    assert f"-> {__name__}.Consumer.method " in repr(route("a.b", Consumer().method))
