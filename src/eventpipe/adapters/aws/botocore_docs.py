"""botocore without its documentation generator at import: a client's docstrings are built when read.

`botocore.client` and `botocore.waiter` import three docstring classes from
`botocore.docs.docstring`, which imports the whole generator (`botocore.docs` and its HTML
parser): about 6 ms of a Lambda cold start, and 1 ms more per client for its operations'
docstrings, for text that only `help()` shows. `defer_botocore_docs()`, called before botocore's
client module is first imported, puts two stand-ins in `sys.modules`:

- `botocore.docs`: the real package, its body run on the first use of a name it defines
  (`generate_docs`, ...); its submodules import as usual (`botocore.handlers` uses
  `botocore.docs.utils`);
- `botocore.docs.docstring`: the three classes as `DeferredDocstring`s, which keep their arguments
  and build the real class's text when it is read (`str()`, `repr()`, `expandtabs()`: what
  botocore's own `LazyLoadedDocstring` answers). Any other name (boto3's docs subclass
  `LazyLoadedDocstring`) loads the real module in its place and comes from it.

So a docstring reads the same, only later, and a botocore that imports other names from these
modules gets the real ones. Nothing is done when botocore's client module is already imported or
the two modules are not where this botocore version keeps them.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

__all__ = ["DeferredDocstring", "defer_botocore_docs"]

PACKAGE = "botocore.docs"
DOCSTRING = "botocore.docs.docstring"
# the classes botocore's client and waiter modules instantiate, one per operation, paginator and waiter
DEFERRED = ("ClientMethodDocstring", "PaginatorDocstring", "WaiterDocstring")


class DeferredDocstring(str):
    """Stands for a botocore docstring class until read: its arguments kept, its text built once."""

    real_module: ClassVar[Any] = None  # set per installation: returns the real docstring module
    real_name: ClassVar[str]

    def __new__(cls, *args: Any, **kwargs: Any) -> DeferredDocstring:
        return super().__new__(cls)  # an empty str, as botocore's

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._args = args
        self._kwargs = kwargs
        self._text: str | None = None

    def _generate(self) -> str:
        if self._text is None:
            real = getattr(type(self).real_module(), self.real_name)
            self._text = str(real(*self._args, **self._kwargs))
        return self._text

    def __str__(self) -> str:
        return self._generate()

    __repr__ = __str__

    def expandtabs(self, tabsize: int = 8) -> str:  # type: ignore[override]
        """`inspect.cleandoc` (hence `help()`) calls it: the text, built now."""
        return self._generate().expandtabs(tabsize)


def defer_botocore_docs() -> bool:
    """Install the stand-ins before botocore's client module is imported; whether they were installed."""
    if "botocore.client" in sys.modules or PACKAGE in sys.modules or DOCSTRING in sys.modules:
        return False
    import botocore  # the package alone: its __init__ loads no client code

    package_spec = importlib.machinery.PathFinder.find_spec(PACKAGE, list(botocore.__path__))
    if package_spec is None or package_spec.loader is None or not package_spec.submodule_search_locations:
        return False
    docstring_spec = importlib.machinery.PathFinder.find_spec(DOCSTRING, list(package_spec.submodule_search_locations))
    if docstring_spec is None or docstring_spec.loader is None:
        return False
    package = _deferred_package(package_spec)
    stand_in = _deferred_docstring_module(docstring_spec, package)
    sys.modules[PACKAGE] = package
    sys.modules[DOCSTRING] = stand_in
    botocore.docs = package  # type: ignore[attr-defined]  # as an import of the package sets it
    return True


def _deferred_package(spec: ModuleSpec) -> ModuleType:
    """The real `botocore.docs`, whose body runs when a name it defines is first asked for."""
    package = importlib.util.module_from_spec(spec)

    def run_body(name: str) -> Any:
        if _is_dunder(name):  # the import system probes such names (e.g. `__path__` of a module)
            raise AttributeError(name)
        del vars(package)["__getattr__"]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, name)

    vars(package)["__getattr__"] = run_body  # PEP 562: called for names the module does not have
    return package


def _deferred_docstring_module(spec: ModuleSpec, package: ModuleType) -> ModuleType:
    """A stand-in for `botocore.docs.docstring` with the deferred classes; any other name loads the real one."""
    stand_in = ModuleType(spec.name, "botocore's docstring classes, deferred (eventpipe.adapters.aws.botocore_docs)")
    real: list[ModuleType] = []

    def real_module() -> ModuleType:
        if not real:
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # from now on, imports of the module get the real one
            try:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            except BaseException:
                sys.modules[spec.name] = stand_in
                raise
            package.docstring = module  # type: ignore[attr-defined]
            real.append(module)
        return real[0]

    for name in DEFERRED:
        attributes = {"real_name": name, "real_module": staticmethod(real_module), "__module__": __name__}
        setattr(stand_in, name, type(name, (DeferredDocstring,), attributes))

    def other_name(name: str) -> Any:
        if _is_dunder(name):  # `from ... import X` looks up `__path__` first: not a reason to load
            raise AttributeError(name)
        return getattr(real_module(), name)

    vars(stand_in)["__getattr__"] = other_name
    package.docstring = stand_in  # type: ignore[attr-defined]
    return stand_in


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")
