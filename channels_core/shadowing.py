"""Which of this distribution's top-level packages a project module hides (`routing.py` next to manage.py, say).

`routing`, `worker` and `interface_server` are top-level packages installed
beside `channels_core`. The directory of `manage.py` comes first on
`sys.path`, so a project-root `routing.py` (the Channels 1.x habit) is what
`import routing` finds. This module tells without importing anything: the
shadowing module may well be the one that fails to import.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACKAGES = ("routing", "worker", "interface_server")


def shadowed_packages() -> dict[str, str]:
    """`{package: path of the module or directory that is imported instead of ours}`."""
    ours_root = Path(__file__).resolve().parent.parent
    shadowed = {}
    for name in PACKAGES:
        where = _location(name)
        if where is not None and where != (ours_root / name).resolve():
            shadowed[name] = str(where)
    return shadowed


def _location(name: str) -> Path | None:
    """The package directory, or module file, `import name` gives (None if it cannot be found)."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None) if module is not None else None
    if spec is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        origin = Path(spec.origin).resolve()
        return origin.parent if origin.name == "__init__.py" else origin
    # A namespace package (a directory without __init__.py): the path finder prefers it over
    # finders that come after it, such as an editable install's.
    locations = list(spec.submodule_search_locations or ())
    return Path(locations[0]).resolve() if locations else None
