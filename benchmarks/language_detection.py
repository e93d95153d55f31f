"""Language detection speed and agreement: langdetect (the detector flightdeck used first) against py3langid,
lingua (low-accuracy mode) and flightdeck's ``detect_language``, on the same texts, in one process.

Each detector sees what ``detect_language`` feeds its library: the first 1,000 characters of a document, and
no call at all for a text with fewer than 20 letters ("unknown"). Models are loaded (and one call made)
before timing. Each of ``--repeats`` rounds times every detector on every document, detectors interleaved
per round so that a change in the machine's load hits all of them alike; the report gives the median
milliseconds per document over all rounds, and how often each detector agrees with langdetect.

    python benchmarks/language_detection.py                          # first 1,000 SciFact documents
    python benchmarks/language_detection.py --detectors langdetect,py3langid,lingua_low
    python benchmarks/language_detection.py --limit 5183 --repeats 1 --detectors langdetect,py3langid
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = Path(os.environ.get("FLIGHTDECK_SCIFACT", ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"))
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "language_detection.json"
MAX_CHARS, MIN_LETTERS = 1000, 20  # as in flightdeck.data.language
_LETTER = re.compile(r"[^\W\d_]")


def _guarded(detect: Callable[[str], str]) -> Callable[[str], str]:
    def run(text: str) -> str:
        head = text[:MAX_CHARS]
        if len(_LETTER.findall(head)) < MIN_LETTERS:
            return "unknown"
        return detect(head)
    return run


def langdetect_detector() -> Callable[[str], str]:
    """langdetect as flightdeck called it: its own factory, seed 0, "unknown" when it raises."""
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    from langdetect.lang_detect_exception import LangDetectException

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)

    def detect(head: str) -> str:
        try:
            detector = factory.create()
            detector.append(head)
            return str(detector.detect())
        except LangDetectException:
            return "unknown"
    return _guarded(detect)


def py3langid_detector() -> Callable[[str], str]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    return _guarded(lambda head: str(identifier.classify(head)[0]))


def lingua_detector() -> Callable[[str], str]:
    from lingua import LanguageDetectorBuilder

    detector = (LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode()
                .with_preloaded_language_models().build())

    def detect(head: str) -> str:
        language = detector.detect_language_of(head)
        return "unknown" if language is None else language.iso_code_639_1.name.lower()
    return _guarded(detect)


def flightdeck_detector() -> Callable[[str], str]:
    sys.path.insert(0, str(ROOT / "src"))
    from flightdeck.data.language import detect_language

    return detect_language  # applies the head and letter rules itself


DETECTORS: dict[str, Callable[[], Callable[[str], str]]] = {
    "langdetect": langdetect_detector, "py3langid": py3langid_detector, "lingua_low": lingua_detector,
    "flightdeck": flightdeck_detector,
}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=SCIFACT, help="a BEIR corpus.jsonl (text field)")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detectors", default="langdetect,py3langid,flightdeck",
                    help=f"comma-separated, of {', '.join(DETECTORS)} (lingua_low needs lingua-language-detector)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    texts: list[str] = []
    with args.corpus.open(encoding="utf-8") as fh:
        for line in fh:
            if len(texts) >= args.limit:
                break
            texts.append(json.loads(line)["text"])
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    detectors: dict[str, Callable[[str], str]] = {}
    load_s: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        detectors[name] = DETECTORS[name]()
        detectors[name]("A first call, so that lazy loading is not timed with the first document.")
        load_s[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {n: [] for n in names}
    answers: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, detect in detectors.items():
            got = []
            for text in texts:
                t0 = time.perf_counter()
                got.append(detect(text))
                times[name].append(time.perf_counter() - t0)
            answers.setdefault(name, got)
    base = answers.get("langdetect")
    load = os.getloadavg()[0]
    rows: dict[str, dict[str, Any]] = {}
    print(f"\n{len(texts)} documents of {args.corpus.name}, {args.repeats} rounds; load average {load:.2f} "
          f"on {os.cpu_count()} cores; {platform.python_implementation()} {platform.python_version()}\n")
    print("| detector | version | load s | median ms/doc | mean ms/doc | speed-up vs langdetect | agreement |")
    print("|---|---|---|---|---|---|---|")
    ld_median = statistics.median(times["langdetect"]) if "langdetect" in times else None
    for name in names:
        median_ms = statistics.median(times[name]) * 1000
        mean_ms = statistics.fmean(times[name]) * 1000
        agree = sum(a == b for a, b in zip(answers[name], base, strict=True)) / len(texts) if base else None
        rows[name] = {"median_ms": median_ms, "mean_ms": mean_ms, "load_s": load_s[name], "agreement": agree,
                      "answers": dict(Counter(answers[name]).most_common()),
                      "disagreements": [(i, base[i], answers[name][i]) for i in range(len(texts))
                                        if base and answers[name][i] != base[i]]}
        dist = {"langdetect": "langdetect", "py3langid": "py3langid", "lingua_low": "lingua-language-detector",
                "flightdeck": "py3langid"}[name]
        speedup = f"{ld_median * 1000 / median_ms:.1f}x" if ld_median else "-"
        print(f"| {name} | {_version(dist)} | {load_s[name]:.2f} | {median_ms:.3f} | {mean_ms:.3f} | {speedup} | "
              f"{'-' if agree is None else f'{agree:.1%}'} |")
    for name in names:
        print(f"\n{name}: {rows[name]['answers']}")
        for i, old, new in rows[name]["disagreements"][:10]:
            print(f"  doc {i}: langdetect={old} {name}={new}: {texts[i][:90]!r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"documents": len(texts), "repeats": args.repeats, "load_average": load,
                                    "detectors": rows}, indent=1))


if __name__ == "__main__":
    main()
