"""Optional dependencies: what a URL needs that a plain `pip install payroute` does not bring."""

from __future__ import annotations

import importlib


class MissingExtra(RuntimeError):
    """A store or Redis URL needs a package that is not installed; the message names the extra to install."""

    def __init__(self, extra: str, module: str, url: str) -> None:
        # The scheme only: the rest of a URL may hold a password.
        scheme = url.split(":", 1)[0]
        super().__init__(
            f"a {scheme}:// URL needs the {module!r} package, which is not installed: pip install 'payroute[{extra}]'"
        )
        self.extra = extra
        self.module = module


def require(extra: str, module: str, url: str) -> None:
    """Raise MissingExtra unless `module` can be imported."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(extra, module, url) from exc
