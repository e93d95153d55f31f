"""When items that could not be ingested fail the run: ``data.failures`` judged after an ingest."""

from __future__ import annotations

from flightdeck.spec.models import FailureSettings

__all__ = ["failure_problem"]


def failure_problem(stored: int, seen: int, failed: list[dict[str, str]],
                    limits: FailureSettings | None) -> str | None:
    """Why the ingest fails, or None: ``stored`` documents the workspace holds after it, ``seen`` items the
    sources listed (those they could not deliver too), ``failed`` the items that failed (``uri``, ``reason``).

    "Nothing ingested" is judged on what the workspace holds, not on this run's work: an incremental run that
    had nothing new to read is fine. The message names the count, the limit and the first reasons.
    """
    first = "; ".join(f"{f['uri']}: {f['reason']}" for f in failed[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    reasons = f" First reasons: {first}{more}." if failed else ""
    problem = None
    if stored == 0:
        if failed:
            return (f"nothing was ingested: all {len(failed)} item(s) the sources listed failed.{reasons} "
                    "Fix the causes (a missing extra is named in its reason) and run again")
        return ("nothing was ingested: the sources listed no documents; check `path` and `include` "
                "of data.sources")
    if failed and limits is not None:
        share = len(failed) / max(seen, 1)
        if limits.max_count is not None and len(failed) > limits.max_count:
            problem = (f"{len(failed)} of {seen} item(s) could not be ingested, over data.failures.max_count="
                       f"{limits.max_count}.{reasons}")
        elif limits.max_share is not None and share > limits.max_share:
            problem = (f"{len(failed)} of {seen} item(s) could not be ingested ({share:.1%}), over "
                       f"data.failures.max_share={limits.max_share:g}.{reasons}")
        if problem:
            problem += (f" The {stored} document(s) ingested are kept; embed and index did not run. Fix the "
                        "causes or raise data.failures in the spec, then run again")
    return problem
