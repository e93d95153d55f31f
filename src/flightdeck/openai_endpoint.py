"""What every provider that talks to an OpenAI-compatible endpoint shares: the base URL, the API key and the
SDK client (the ``openai`` embedder of phase 2, the ``openai`` generator of phase 3).

Where the key goes: a key the spec names (``api_key: ${MY_KEY}``) goes to the spec's endpoint, whatever it
is. ``$OPENAI_API_KEY`` from the environment belongs to OpenAI: it is sent to ``https://api.openai.com`` and
to the endpoint ``$OPENAI_BASE_URL`` names (the environment pairs the two, as the SDK does), never to
another ``base_url`` a spec sets, since a spec from elsewhere could otherwise collect it with a URL of its
own. To send it to such a server, name it: ``api_key: ${OPENAI_API_KEY}``. The other settings the SDK reads
from the environment (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``, ``OPENAI_CUSTOM_HEADERS``,
``OPENAI_ADMIN_KEY``) follow the same rule.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from flightdeck.errors import FlightdeckError
from flightdeck.registry.lookup import optional_import

__all__ = ["OPENAI_BASE_URL", "endpoint_url", "endpoint_host", "api_key", "key_source", "no_key_hint",
           "environment_applies", "sdk_client"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_HOST = "api.openai.com"
_NO_KEY = "not-needed"  # local servers take any key, but the SDK refuses to start without one


def endpoint_url(setting: str | None) -> str:
    """The endpoint in use: the setting, else ``$OPENAI_BASE_URL``, else OpenAI's."""
    return (setting or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")


def endpoint_host(url: str) -> str:
    """``host[:port]`` of an endpoint URL."""
    return urlsplit(url).netloc or url


def environment_applies(url: str) -> bool:
    """Whether the OpenAI settings of the environment (``$OPENAI_API_KEY``…) may be sent to endpoint ``url``.

    Yes for OpenAI's own API over https, and for the endpoint ``$OPENAI_BASE_URL`` names; no for any other.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and (parts.hostname or "").rstrip(".") == OPENAI_HOST and parts.port in (None, 443):
        return True
    paired = os.environ.get("OPENAI_BASE_URL")
    return bool(paired) and paired.rstrip("/") == url.rstrip("/")


def api_key(setting: SecretStr | None, url: str, *, who: str, section: str,
            error: type[FlightdeckError] = FlightdeckError) -> str:
    """The key for endpoint ``url``: the setting, else ``$OPENAI_API_KEY`` where it belongs (see the module
    docstring); OpenAI's own API requires one (``error`` names ``who`` and the spec ``section`` to set it
    in), a local server takes any."""
    if setting is not None:
        return setting.get_secret_value()
    key = os.environ.get("OPENAI_API_KEY")
    if key and environment_applies(url):
        return key
    if endpoint_host(url) == OPENAI_HOST:
        hint = " (and use https://)" if key else ""
        raise error(f"{who} needs an API key for {url}: set the OPENAI_API_KEY environment variable{hint}, or "
                    f"`api_key: ${{YOUR_KEY_VAR}}` under {section} in the spec")
    return _NO_KEY


def key_source(setting: SecretStr | None, url: str) -> str | None:
    """Where the key sent to ``url`` came from, for an error that says the server refused it; ``None`` when
    no real key was sent (see :func:`no_key_hint`)."""
    if setting is not None:
        return "the `api_key` setting"
    if os.environ.get("OPENAI_API_KEY") and environment_applies(url):
        return "the OPENAI_API_KEY environment variable"
    return None


def no_key_hint(url: str, *, section: str) -> str:
    """What to do when ``url`` wants a key and none was sent."""
    if os.environ.get("OPENAI_API_KEY"):
        return (f"the OPENAI_API_KEY environment variable is sent only to {OPENAI_BASE_URL} (or to the endpoint "
                f"$OPENAI_BASE_URL names), not to {endpoint_host(url)}; to send it there, name it under "
                f"{section}: `api_key: ${{OPENAI_API_KEY}}`")
    return f"set one under {section}: `api_key: ${{YOUR_KEY_VAR}}`"


def sdk_client(url: str, key: str, *, timeout: float, max_retries: int, who: str) -> Any:
    """An ``openai.OpenAI`` client (it retries 429, 5xx and dropped connections with backoff).

    For an endpoint the environment does not belong to, what the SDK took from the environment besides the
    key (organization and project ids, ``OPENAI_CUSTOM_HEADERS``, the admin key) is dropped before any
    request, so that it is not sent there either.
    """
    openai = optional_import("openai", "openai", who)
    client = openai.OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=max_retries)
    if not environment_applies(url):
        client.organization = client.project = None
        if hasattr(client, "admin_api_key"):
            client.admin_api_key = None
        if isinstance(getattr(client, "_custom_headers", None), dict):
            client._custom_headers = {}  # only OPENAI_CUSTOM_HEADERS fills it: no default_headers are passed
    return client
