"""Providers by category and name (DESIGN.md §4)."""

from flightdeck.registry.categories import Category
from flightdeck.registry.flavors import BUILTIN_FLAVORS, Flavor
from flightdeck.registry.lookup import ENTRY_POINT_GROUP, Registry, registry

__all__ = ["Category", "Flavor", "BUILTIN_FLAVORS", "Registry", "registry", "ENTRY_POINT_GROUP"]
