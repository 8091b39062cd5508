"""The interface server: HTTP/1.1 and WebSocket on Twisted + Autobahn, each event turned into a channel message.

`interface-server module.path:channel_layer` (`cli.py`) runs a `server.Server`
against any object with the ASGI 1.0 layer API. It imports nothing of Django,
and of this project only `channels_core.layers`. The translation between wire
events and channel messages is pure (`wire_messages.py`); the private names of
Twisted, Autobahn, h11 and the standard library it relies on are in `compat.py`.
"""
