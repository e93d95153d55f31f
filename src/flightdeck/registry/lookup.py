"""Finding providers by category and name, importing them lazily, and telling what is installed."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from flightdeck.errors import MissingDependencyError, UnknownProviderError
from flightdeck.registry.categories import Category
from flightdeck.registry.flavors import BUILTIN_FLAVORS, Flavor

__all__ = ["Registry", "registry", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "flightdeck.providers"


def _import_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def _installed(module: str) -> bool:
    """Whether ``module`` (dotted names allowed) can be imported, without importing it.

    ``find_spec("a.b")`` imports ``a`` and raises when ``a`` is missing: that counts as not installed.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
        return [m for m in flavor.requires if not _installed(m)]

    def install_hint(self, flavor: Flavor) -> str:
        extra = flavor.extra or flavor.name
        return f"pip install 'flightdeck[{extra}]'"

    def load(self, category: Category, name: str) -> Any:
        """Import and return the implementation of ``name`` (a class or a function)."""
        flavor = self.get(category, name)
        missing = self.missing_modules(flavor)
        try:
            return _import_path(flavor.impl)
        except ImportError as exc:
            raise MissingDependencyError(
                f"{flavor.category.value} {flavor.name!r} needs: {self.install_hint(flavor)}"
                + (f" (missing: {', '.join(missing)})" if missing else f" ({exc})")
            ) from exc

    def config_class(self, category: Category, name: str) -> Any | None:
        """The pydantic config class of ``name``; importable without the optional dependency."""
        flavor = self.get(category, name)
        return _import_path(flavor.config) if flavor.config else None

    def create(self, category: Category, name: str, settings: dict[str, Any] | None = None) -> Any:
        """Build a provider instance from its settings (validated by its config class)."""
        impl = self.load(category, name)
        config_cls = self.config_class(category, name)
        if config_cls is None:
            return impl() if isinstance(impl, type) else impl
        return impl(config_cls(**(settings or {})))

    def for_option(self, option_key: str) -> list[Flavor]:
        """Flavors that implement the checklist option ``phase.section.option``."""
        return [f for f in self.flavors() if option_key in f.options]


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry (built-ins plus installed plugins)."""
    return Registry()
