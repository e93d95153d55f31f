"""What every provider that talks to an OpenAI-compatible endpoint shares: the base URL, the API key and the
SDK client (the ``openai`` embedder of phase 2, the ``openai`` generator of phase 3)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from flightdeck.errors import FlightdeckError, MissingDependencyError

__all__ = ["OPENAI_BASE_URL", "endpoint_url", "endpoint_host", "api_key", "sdk_client"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


def endpoint_url(setting: str | None) -> str:
    """The endpoint in use: the setting, else ``$OPENAI_BASE_URL``, else OpenAI's."""
    return (setting or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")


def endpoint_host(url: str) -> str:
    """``host[:port]`` of an endpoint URL."""
    return urlsplit(url).netloc or url


def api_key(setting: SecretStr | None, url: str, *, who: str, section: str,
            error: type[FlightdeckError] = FlightdeckError) -> str:
    """The key: the setting, else ``$OPENAI_API_KEY``; OpenAI's own API requires one (``error`` names
    ``who`` and the spec ``section`` to set it in), a local server takes any."""
    if setting is not None:
        return setting.get_secret_value()
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if endpoint_host(url) == "api.openai.com":
        raise error(f"{who} needs an API key for {url}: set the OPENAI_API_KEY environment variable, or "
                    f"`api_key: ${{YOUR_KEY_VAR}}` under {section} in the spec")
    return "not-needed"  # local servers take any key, but the SDK refuses to start without one


def sdk_client(url: str, key: str, *, timeout: float, max_retries: int, who: str) -> Any:
    """An ``openai.OpenAI`` client (it retries 429, 5xx and dropped connections with backoff)."""
    try:
        import openai
    except ImportError as exc:
        raise MissingDependencyError(f"{who} needs: pip install 'flightdeck[openai]'") from exc
    return openai.OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=max_retries)
