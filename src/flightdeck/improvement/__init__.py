"""Phase 9, continuous improvement: lifecycle automation (``improvement.automation``, ``flightdeck schedule``)."""

from flightdeck.improvement.automation import (
    AutomationCycle,
    CycleResult,
    Scheduler,
    StepOutcome,
    StopSignal,
    cycle_history,
    export_cron,
    export_github_actions,
    sources_fingerprint,
)

__all__ = ["AutomationCycle", "CycleResult", "Scheduler", "StepOutcome", "StopSignal", "cycle_history",
           "export_cron", "export_github_actions", "sources_fingerprint"]
