"""Serving (checklist 5.3 and 8.3): the service layer over :class:`~flightdeck.Project`, and the transports that
are thin shells over it (the FastAPI app in :mod:`flightdeck.serving.api`).

The service authenticates (API keys, :mod:`flightdeck.governance.api_keys`), authorises (roles,
:mod:`flightdeck.governance.access`) and answers; a transport only turns requests into calls and results into
responses.
"""

from __future__ import annotations

__all__: list[str] = []
