"""flightdeck: run the AI engineering lifecycle from one declarative spec (the filled-in checklist).

The public API is small: load a project from its spec, run its pipeline, search, ask, and read the
checklist::

    from flightdeck import Project
    project = Project.load("flightdeck.yaml")
    project.run()
    project.ask("How do I create a virtual environment?")
"""

from flightdeck.core import __version__
from flightdeck.errors import (
    FlightdeckError,
    IndexMismatchError,
    MissingDependencyError,
    SpecError,
    UnknownProviderError,
)
from flightdeck.project import Project

__all__ = [
    "Project",
    "FlightdeckError",
    "SpecError",
    "UnknownProviderError",
    "MissingDependencyError",
    "IndexMismatchError",
    "__version__",
]
