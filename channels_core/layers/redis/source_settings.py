"""What every connection source reads the same way from its redis-py connection options."""

from __future__ import annotations

from typing import Any


class KwargsSettings:
    """`db` and `password_given` read from a source's `connection_kwargs` (fixed hosts and Sentinel alike)."""

    connection_kwargs: dict[str, Any]

    @property
    def db(self) -> int:
        return int(self.connection_kwargs.get("db", 0))

    @property
    def password_given(self) -> bool:
        return bool(self.connection_kwargs.get("password"))
