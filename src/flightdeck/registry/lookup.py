"""Finding providers by category and name, importing them lazily, and telling what is installed."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import shutil
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from flightdeck.errors import MissingDependencyError, UnknownProviderError
from flightdeck.registry.categories import Category
from flightdeck.registry.flavors import BUILTIN_FLAVORS, Flavor

__all__ = ["Registry", "registry", "installed", "optional_import", "missing_dependency", "missing_program",
           "pip_install_hint", "program_hint", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "flightdeck.providers"
# How to get the programs that providers run (Flavor.binaries).
_BINARY_HINTS = {"tesseract": "apt-get install tesseract-ocr"}


def _import_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def installed(module: str) -> bool:
    """Whether ``module`` (dotted names allowed) can be imported, without importing it.

    ``find_spec("a.b")`` imports ``a`` and raises when ``a`` is missing: that counts as not installed.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# Told the modules (as ``Flavor.requires`` names them) of every provider loaded, and every optional library
# imported through ``optional_import``; the test suite sets it to record what each test needed
# (tests/checklist_verification.py). None outside the tests.
requirement_observer: Callable[[Iterable[str]], None] | None = None


def _observe(modules: Iterable[str]) -> None:
    if requirement_observer is not None:
        requirement_observer(list(modules))


def pip_install_hint(extra: str) -> str:
    """The command that installs flightdeck's optional dependencies ``extra``: the one place it is written."""
    return f"pip install 'flightdeck[{extra}]'"


def program_hint(program: str) -> str:
    """What a provider needs of the program ``program`` (a name or a path) and how to get it."""
    return f"the `{program}` program on PATH ({_BINARY_HINTS.get(Path(program).name, 'install it')})"


def missing_dependency(purpose: str, extra: str | None, missing: str = "", *, alternative: str = "",
                       install: str = "") -> MissingDependencyError:
    """The error for a missing optional library, worded alike wherever it is raised.

    ``"<purpose> needs: pip install 'flightdeck[<extra>]' (missing: <missing>), or <alternative>"``.
    ``install`` replaces the extra's command for a library that no extra brings (a dependency of flightdeck
    itself, ``extra`` None); ``alternative`` names a setting that does without the library.
    """
    if not install and not extra:
        raise ValueError("missing_dependency needs an extra or an install command")
    message = f"{purpose} needs: {install or pip_install_hint(extra or '')}"
    if missing:
        message += f" (missing: {missing})"
    if alternative:
        message += f", or {alternative}"
    return MissingDependencyError(message)


def missing_program(program: str, purpose: str) -> MissingDependencyError:
    """The error for a program (as ``tesseract``) that a provider runs and that is not on PATH."""
    return MissingDependencyError(f"{purpose} needs {program_hint(program)}")


def optional_import(module: str, extra: str | None, purpose: str = "", *, alternative: str = "",
                    install: str = "") -> Any:
    """Import the optional library ``module`` or raise :class:`MissingDependencyError` naming the pip extra.

    ``module`` may be dotted (``pyarrow.parquet``): the submodule is returned. ``purpose`` says what needs
    it, e.g. ``"the BM25 keyword index"``; ``alternative`` and ``install`` are as in
    :func:`missing_dependency`. The module is told to the requirement observer (the checklist proof).
    """
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        # exc.name is what could not be imported: the library itself, or a dependency of it
        raise missing_dependency(purpose or module, extra, exc.name or module, alternative=alternative,
                                 install=install) from exc
    _observe([module])
    return imported


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry:
    """Providers by ``(category, name)``: the built-in table plus entry-point plugins.

    A plugin's entry point (group ``flightdeck.providers``) names a :class:`Flavor`, or an iterable of
    them, or a callable returning either.
    """

    def __init__(self, flavors: Iterable[Flavor] = BUILTIN_FLAVORS, *, plugins: bool = True) -> None:
        self._flavors: dict[tuple[Category, str], Flavor] = {}
        for flavor in flavors:
            self.add(flavor)
        self._plugins_loaded = not plugins
        self.plugin_errors: list[str] = []

    def add(self, flavor: Flavor) -> None:
        """Register ``flavor``; a later registration of the same name replaces the earlier one."""
        self._flavors[(Category(flavor.category), flavor.name)] = flavor

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, Flavor):
                    obj = obj()
                for flavor in [obj] if isinstance(obj, Flavor) else list(obj):
                    if not isinstance(flavor, Flavor):
                        raise TypeError(f"expected a Flavor, got {type(flavor).__name__}")
                    self.add(flavor)
            except Exception as exc:  # a broken plugin must not take the CLI down
                self.plugin_errors.append(f"plugin {ep.name!r} ({ep.value}): {exc}")

    def flavors(self, category: Category | None = None) -> list[Flavor]:
        """All flavors, or those of one category, in registration order."""
        self._load_plugins()
        return [f for (c, _), f in self._flavors.items() if category is None or c == category]

    def names(self, category: Category) -> list[str]:
        """The valid names of a category, sorted."""
        return sorted(f.name for f in self.flavors(category))

    def get(self, category: Category, name: str) -> Flavor:
        """The flavor registered as ``name``; unknown names raise with the list of valid ones."""
        self._load_plugins()
        category = Category(category)
        try:
            return self._flavors[(category, name)]
        except KeyError:
            names = self.names(category)
            raise UnknownProviderError(
                f"Unknown {category.value} {name!r}. Available: {', '.join(names) or '(none)'}."
                + _did_you_mean(name, names)
            ) from None

    def missing_modules(self, flavor: Flavor) -> list[str]:
        """Modules the flavor needs that are not installed (checked without importing them)."""
        return [m for m in flavor.requires if not installed(m)]

    def unmet(self, flavor: Flavor) -> list[str]:
        """What ``flavor`` lacks in this environment, each as what to do about it; empty when usable.

        Checks its modules (without importing them), the programs it runs, and that one of the providers it
        ``needs`` is itself usable (a provider's own ``needs`` are not followed further).
        """
        unmet: list[str] = []
        if self.missing_modules(flavor):
            unmet.append(self.install_hint(flavor))
        unmet += [program_hint(b) for b in flavor.binaries if shutil.which(b) is None]
        if flavor.needs:
            lacking: list[str] = []
            for ref in flavor.needs:
                category, _, name = ref.partition(":")
                other = self._flavors.get((Category(category), name))
                if other is None:
                    continue
                lacks = self.missing_modules(other) and [self.install_hint(other)]
                lacks += [f"`{b}` on PATH" for b in other.binaries if shutil.which(b) is None]
                if not lacks:
                    break
                lacking.append(f"{category} {name}: {'; '.join(lacks)}")
            else:
                unmet.append("one of " + " or ".join(lacking or list(flavor.needs)))
        return unmet

    def install_hint(self, flavor: Flavor) -> str:
        return pip_install_hint(flavor.extra or flavor.name)

    def load(self, category: Category, name: str) -> Any:
        """Import and return the implementation of ``name`` (a class or a function)."""
        flavor = self.get(category, name)
        missing = self.missing_modules(flavor)
        try:
            impl = _import_path(flavor.impl)
        except ImportError as exc:
            raise MissingDependencyError(
                f"{flavor.category.value} {flavor.name!r} needs: {self.install_hint(flavor)}"
                + (f" (missing: {', '.join(missing)})" if missing else f" ({exc})")
            ) from exc
        _observe(flavor.requires)
        return impl

    def config_class(self, category: Category, name: str) -> Any | None:
        """The pydantic config class of ``name``; importable without the optional dependency."""
        flavor = self.get(category, name)
        return _import_path(flavor.config) if flavor.config else None

    def create(self, category: Category, name: str, settings: dict[str, Any] | None = None, *,
               provide: Callable[[str], Any] | None = None) -> Any:
        """Build a provider instance from its settings (validated by its config class).

        A flavor that ``takes`` components of the project (``Flavor.takes``, e.g. the semantic chunker takes
        the embedder) gets each by keyword from ``provide(name)``; without ``provide`` they are left to the
        implementation's defaults.
        """
        flavor = self.get(category, name)
        impl = self.load(category, name)
        config_cls = self.config_class(category, name)
        if config_cls is None:
            return impl() if isinstance(impl, type) else impl
        components = {} if provide is None else {part: provide(part) for part in flavor.takes}
        return impl(config_cls(**(settings or {})), **components)

    def for_option(self, option_key: str) -> list[Flavor]:
        """Flavors that implement the checklist option ``phase.section.option``."""
        return [f for f in self.flavors() if option_key in f.options]


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry (built-ins plus installed plugins)."""
    return Registry()
