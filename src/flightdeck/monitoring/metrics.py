"""The server's metrics for Prometheus (checklist 7.1, 7.4): latency per route and per stage, tokens, cost,
requests and errors by type. Throughput is ``rate(flightdeck_requests_total[1m])`` in Prometheus.

Each :class:`ServerMetrics` has its own registry (never prometheus_client's global one), so two apps in one
process — the tests — do not share counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightdeck.registry.lookup import optional_import

__all__ = ["ServerMetrics", "LATENCY_BUCKETS", "STAGES"]

# Seconds: the real-time tier lives under 0.1, near real time under 1.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The stages of an answer, as its timings name them (milliseconds) → the stage label.
STAGES = {"embed_query": "embed", "vector": "retrieve", "keyword": "retrieve", "fuse_fetch": "retrieve",
          "answer": "generate",
          "first_token": "first_token"}


class ServerMetrics:
    """Counters and histograms of one server; ``prices`` maps a generator id to its
    :class:`~flightdeck.spec.server.Price` (US dollars per million tokens)."""

    def __init__(self, prices: Mapping[str, Any] | None = None) -> None:
        prom = optional_import("prometheus_client", "serve", "the /metrics endpoint of flightdeck serve")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self.prices = dict(prices or {})
        r = self.registry
        self.requests = prom.Counter("flightdeck_requests", "HTTP requests by route, method and status",
                                     ["route", "method", "status"], registry=r)
        self.latency = prom.Histogram("flightdeck_request_seconds", "request latency by route",
                                      ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.stage = prom.Histogram("flightdeck_stage_seconds", "time spent per stage of a search or answer",
                                    ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = prom.Counter("flightdeck_errors", "error responses by type", ["type"], registry=r)
        self.tokens = prom.Counter("flightdeck_tokens", "LLM tokens by generator and direction (in = prompt)",
                                   ["generator", "direction"], registry=r)
        self.cost = prom.Counter("flightdeck_cost_usd", "estimated cost from deployment.server.prices",
                                 ["generator"], registry=r)
        self.answers = prom.Counter("flightdeck_answers", "answers by outcome (found, not_found, failed)",
                                    ["outcome"], registry=r)
        self.in_flight = prom.Gauge("flightdeck_requests_in_flight", "requests being served", registry=r)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def observe_error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def observe_timings(self, timings_ms: Mapping[str, float]) -> None:
        for name, ms in timings_ms.items():
            stage = STAGES.get(name)
            if stage is not None and isinstance(ms, int | float):
                self.stage.labels(stage).observe(ms / 1000)

    def observe_answer(self, found: bool | None, generator: str, usage: Mapping[str, int]) -> None:
        self.answers.labels("failed" if found is None else "found" if found else "not_found").inc()
        prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        if prompt or completion:
            self.tokens.labels(generator, "in").inc(prompt)
            self.tokens.labels(generator, "out").inc(completion)
            price = self.prices.get(generator)
            if price is not None:
                self.cost.labels(generator).inc((prompt * price.input_per_million
                                                 + completion * price.output_per_million) / 1e6)

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
