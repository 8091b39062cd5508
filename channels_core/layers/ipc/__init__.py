"""The single-machine channel layer: no broker process, only the kernel's tmpfs, file locks and semaphores.

See `.layer` for the design and why it was chosen.
"""

from .layer import IPCChannelLayer

__all__ = ["IPCChannelLayer"]
