"""``governance.hallucination_mitigation`` (checklist 8.2, hallucination mitigation strategies): checks an answer
must pass before it is returned; one that fails becomes a refusal ("Not found in the documents.").

```yaml
governance:
  hallucination_mitigation:
    require_citation: true     # an answer that cites no source becomes a refusal
    min_support: 0.45          # refusal threshold: every sentence must be this close (cosine, the project's embedder)
                               #   to a sentence of the sources it cites (null: off)
    judge_check: false         # the LLM judge (evaluation.judge) is asked whether the answer is faithful to them
    judge_unparsed: allow      # what a judge reply that is neither yes nor no does: allow or refuse
```

What was withheld stays in the answer's trace for review, never in the response; the strategies are part of the
spec, so a release records them, and `flightdeck eval` measures an answer set with them on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MitigationSettings"]


class MitigationSettings(BaseModel):
    """``governance.hallucination_mitigation``: the checks an answer must pass; all off by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    require_citation: bool = Field(False, description="an answer that cites no source becomes a refusal")
    min_support: float | None = Field(None, ge=0.0, le=1.0, description="refusal threshold: an answer with a "
                                      "sentence less similar than this to every sentence of the sources it cites "
                                      "becomes a refusal (judge-free, the project's embedder)")
    judge_check: bool = Field(False, description="ask the LLM judge (evaluation.judge, else the project's LLM or "
                                                 "the packaged one) whether the answer is faithful to its sources")
    judge_unparsed: Literal["allow", "refuse"] = Field("allow", description="what a judge reply that is neither "
                                                                           "yes nor no does")

    @property
    def active(self) -> bool:
        return self.require_citation or self.min_support is not None or self.judge_check
