"""The Twisted + Autobahn interface server (HTTP and WebSocket onto channels).

The server arrives with issue 3; until then this package is intentionally empty.
It never imports Django.
"""
