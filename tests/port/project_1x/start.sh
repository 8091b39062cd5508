#!/bin/sh
# Start the stack the way the docs did before Procfiles: one worker, then daphne in front.
python manage.py runworker --threads 2 &
exec daphne -b 127.0.0.1 -p 8000 mysite.asgi:channel_layer
