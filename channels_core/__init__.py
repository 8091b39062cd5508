"""The Channels 1.x architecture on today's Python: layers, channels, groups.

Importing this package needs neither configured Django settings nor Twisted.
"""

__version__ = "0.1.0"
