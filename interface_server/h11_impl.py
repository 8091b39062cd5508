"""The h11 module the server uses: the compiled build (`h11-mypyc`) when installed, else plain h11.

`h11-mypyc` is the same h11 code compiled with mypyc: the same API and
behaviour, about four times faster at parsing requests and framing
responses (`pip install ".[speedups]"`). `INTERFACE_SERVER_PURE_H11=1`
forces the pure-Python one (the test suite runs both).
"""

from __future__ import annotations

import os

if os.environ.get("INTERFACE_SERVER_PURE_H11") == "1":
    import h11
else:
    try:
        import h11_mypyc as h11
    except ImportError:
        import h11

DESCRIPTION = f"{h11.__name__.replace('_', '-')} {h11.__version__}"

__all__ = ["DESCRIPTION", "h11"]
