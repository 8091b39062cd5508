"""The app the peer benchmarks serve on every stack: a hello view, a WebSocket echo and the shootout's protocol.

`PEERAPP_STACK=ours` (the default) serves it through interface-server + runworker
(`peerapp.asgi:channel_layer`, consumers in `peerapp.consumers`); `PEERAPP_STACK=channels4`
through daphne 4 with Channels 4 consumers and channels_redis (`peerapp.channels4:application`,
run from the peer venv). gunicorn serves the same views through `peerapp.wsgi`.
"""
