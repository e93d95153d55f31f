"""The pool of answers that examples/python-docs/eval/judge-labels.jsonl labels by hand: answers the demo gave in
two evaluation runs (one per generator), each with the question, the reference answer and the text of the chunks
it cites (what a faithfulness judge reads). The labels themselves are written by a person, not by this script.

    python benchmarks/judge_label_pool.py RUN_ID:N RUN_ID:N > pool.jsonl    # N answers from each run
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "python-docs"
CONTEXT_CHARS = 1500


def main() -> None:
    from flightdeck import Project
    from flightdeck.models.trackers.builtin import ExperimentRuns
    from flightdeck.workspace.schema import chunks

    project = Project.load(DEMO)
    ws = project.workspace
    runs = ExperimentRuns(ws)
    for arg in sys.argv[1:]:
        run_id, n = arg.split(":")
        run = runs.get(run_id)
        report = json.loads(ws.artifacts.get_bytes(run.artifacts["report.json"]))
        answered = [q for q in report["questions"] if q["found"]]
        for q in random.Random(7).sample(answered, min(int(n), len(answered))):
            ids = [c["chunk_id"] for c in q["citations"]] or [h["chunk_id"] for h in q["retrieved"][:3]]
            with ws.engine.connect() as conn:
                texts = dict(conn.execute(select(chunks.c.id, chunks.c.text).where(chunks.c.id.in_(ids))).all())
            contexts, used = [], 0
            for cid in ids:
                text = texts.get(cid, "")[: max(0, CONTEXT_CHARS - used)]
                if text:
                    contexts.append(text)
                    used += len(text)
            print(json.dumps({"id": f"{q['id']}@{report['run']['generator'].split(':')[0]}", "question": q["question"],
                              "answerable": q["answerable"], "reference_answer": q["reference_answer"],
                              "generator": report["run"]["generator"], "run": run.id, "answer": q["answer"],
                              "contexts": contexts}, ensure_ascii=False))


if __name__ == "__main__":
    main()
