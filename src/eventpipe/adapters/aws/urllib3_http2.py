"""urllib3 without `importlib.metadata` at import: its HTTP/2 package's body runs when first used.

urllib3 2.x's connection module imports `urllib3.http2.probe` (a cache of which hosts speak
HTTP/2), which runs the package's `__init__` first. That body imports `importlib.metadata` (with
`zipfile`, `csv` and `importlib.abc`, which nothing else of a cold start loads) for one call,
`version("h2")`, made only by `inject_into_urllib3()`: urllib3's opt-in HTTP/2, which botocore
never turns on. That import is 10 to 15 ms of CPU on Python 3.12, 9 to 10 on 3.11
(docs/benchmark.md, Cold start).

`defer_urllib3_http2()`, called before urllib3 is first imported, has the import system load
`urllib3.http2` as usual (its spec, `__path__`, the attribute on `urllib3`) but with its body run
at the first use of a name it defines (`inject_into_urllib3`, `__all__`, ...). Its submodules
(`probe`, `connection`) import as usual without running it. So the package reads the same, only
later; nothing is done when urllib3 is already imported or has no `http2` package.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["defer_urllib3_http2"]

PACKAGE = "urllib3.http2"


class _DeferredBody:
    """A package's loader for one import: the module is set up, its body waits for a name it defines."""

    def __init__(self, spec: ModuleSpec, loader: Loader) -> None:
        self.spec, self.loader = spec, loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        spec, real = self.spec, self.loader
        module.__loader__ = spec.loader = real  # the real loader from now on (reload, resources)
        locations = list(spec.submodule_search_locations or ())

        # Threads asking at once: one runs the body while this hook stays, the others wait at the lock. The
        # body asking for a name of its own package while it runs gets an AttributeError, as in any import.
        lock = threading.RLock()
        running: list[bool] = []

        def run_body(name: str) -> Any:
            if _probed(name) or _is_submodule(spec.name, name, locations):
                raise AttributeError(name)
            with lock:
                if vars(module).get("__getattr__") is run_body:
                    if running:
                        raise AttributeError(name)
                    running.append(True)
                    try:
                        real.exec_module(module)
                    finally:
                        running.clear()
                    if vars(module).get("__getattr__") is run_body:  # unless the body defined its own
                        del vars(module)["__getattr__"]
            return getattr(module, name)

        vars(module)["__getattr__"] = run_body  # PEP 562: called for names the module does not have


def _probed(name: str) -> bool:
    """A name the import system asks for without using the package (`__path__`, `__spec__`, ...); not
    `__all__`, which `from urllib3.http2 import *` reads."""
    return name.startswith("__") and name.endswith("__") and name != "__all__"


def _is_submodule(package: str, name: str, locations: list[str]) -> bool:
    """`from .http2 import probe` asks the package for `probe` before importing it as a submodule."""
    return importlib.machinery.PathFinder.find_spec(f"{package}.{name}", locations) is not None


class _FindOnce:
    """On `sys.meta_path` until urllib3's HTTP/2 package is imported: gives its spec a deferring loader."""

    @classmethod
    def find_spec(
        cls, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != PACKAGE:
            return None
        _remove_finder()
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return spec
        spec.loader = _DeferredBody(spec, spec.loader)  # type: ignore[assignment]  # a loader by protocol
        return spec


def _remove_finder() -> None:
    if _FindOnce in sys.meta_path:
        sys.meta_path.remove(_FindOnce)


def defer_urllib3_http2() -> bool:
    """Defer the body of `urllib3.http2` before urllib3 is imported; whether it was set up."""
    if "urllib3" in sys.modules or PACKAGE in sys.modules or _FindOnce in sys.meta_path:
        return False
    urllib3 = importlib.util.find_spec("urllib3")  # found, not imported
    if urllib3 is None or not urllib3.submodule_search_locations:
        return False
    if importlib.machinery.PathFinder.find_spec(PACKAGE, list(urllib3.submodule_search_locations)) is None:
        return False  # a urllib3 without HTTP/2 support imports nothing of it
    sys.meta_path.insert(0, _FindOnce)
    return True
