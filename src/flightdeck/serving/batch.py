"""Batch inference (checklist 5.3 batch_inference, 0.3 batch): questions in JSONL, answers out in JSONL.

Independent of any transport and of :class:`~flightdeck.Project`: a :class:`BatchRunner` gets an ``answer``
callable (``lambda q: project.ask(q).to_dict()``). The CLI (``flightdeck batch``) runs one file;
:class:`BatchJobs` runs the jobs the HTTP API submits, one at a time, in a background thread.

Input: one JSON object a line, ``{"question": "...", "id": "q1", ...}``. ``id`` (a string or an integer) is
optional: a line without one is ``line-<n>`` (1-based line number). Other fields come back as ``meta``.
Blank lines are skipped. A bad line (not JSON, not an object, no question, an empty or over-long question, a
bad or duplicate id) gets an error record; the other lines are answered.

Output: one record a line, in input order, ``{"id", "line", "question", "answer", "found", "citations",
"index_version", "timings_ms", "usage", "meta"}``, or ``{"id", "line", "error"}`` for a bad line or a
question whose answering raised.

Resumable after a kill (even ``kill -9``): each record is appended with one ``write`` and ``fsync``ed before
the next question. A rerun truncates a torn last line, keeps every complete record, and answers only the
lines that have none, so no line is answered twice in the output nor lost. A record counts for the input line
of the same number and id; an output written from another input is refused rather than mixed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flightdeck.errors import (
    FlightdeckError,
    IndexMismatchError,
    MissingDependencyError,
    SpecError,
    UnknownProviderError,
    WorkspaceError,
)

__all__ = ["BatchRunner", "BatchSummary", "BatchLine", "BatchJobs", "BatchError", "BatchFileError", "BatchBusyError",
           "UnknownBatchJob", "read_batch_input", "MAX_QUESTION_CHARS", "MAX_ID_CHARS", "BATCH_FOLDER", "JOB_STATES"]

_log = logging.getLogger(__name__)

#: The longest question a line may ask (the same limit as ``POST /v1/query``).
MAX_QUESTION_CHARS = 4000
#: The longest id a line may give.
MAX_ID_CHARS = 256
#: The workspace's folder of batch jobs: ``<workspace root>/batch/<job id>/``.
BATCH_FOLDER = "batch"
#: The states of a job: waiting, answering, finished (some lines may have failed), stopped by an error.
JOB_STATES = ("queued", "running", "done", "failed")

# Errors of the project rather than of one question: every line would fail the same way, so the batch stops
# (nothing is recorded for the line) and a rerun, once it is fixed, goes on from there.
_FATAL = (WorkspaceError, IndexMismatchError, MissingDependencyError, SpecError, UnknownProviderError)


class BatchError(FlightdeckError, ValueError):
    """A batch that cannot run as asked (no lines, a bad submission): the API answers 422."""


class BatchFileError(BatchError):
    """The input or output file cannot be used: unreadable, or an output written from another input."""


class BatchBusyError(BatchFileError):
    """Another process is writing the same output file."""


class UnknownBatchJob(FlightdeckError, KeyError):
    """No batch job has this id (or it is not the caller's): the API answers 404."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else "unknown batch job"


# input ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchLine:
    """One non-blank input line: its question, or the error that stops it being asked."""

    line: int
    id: str | int
    question: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_line(n: int, raw: bytes, max_chars: int) -> BatchLine | None:
    """Line ``n`` (1-based) as a :class:`BatchLine`; None for a blank line."""
    auto = f"line-{n}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BatchLine(n, auto, error=f"line {n}: not UTF-8 text (byte {exc.start + 1})")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return BatchLine(n, auto, error=f"line {n}: not JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        return BatchLine(n, auto, error=f"line {n}: not JSON (nested too deeply to read)")
    except ValueError as exc:  # json's limit on the digits of an integer
        return BatchLine(n, auto, error=f"line {n}: not JSON ({exc})")
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(obj), "a number")
        return BatchLine(n, auto, error=f'line {n}: {kind}, not an object like {{"question": "..."}}')
    meta = {k: v for k, v in obj.items() if k not in ("id", "question")}
    given = obj.get("id")
    if given is not None and (isinstance(given, bool) or not isinstance(given, str | int)):
        return BatchLine(n, auto, meta=meta, error=f'line {n}: "id" must be a string or an integer, not {_show(given)}')
    if isinstance(given, str) and not (given.strip() and len(given) <= MAX_ID_CHARS):
        return BatchLine(n, auto, meta=meta,
                         error=f'line {n}: "id" must be a non-empty string of at most {MAX_ID_CHARS} characters')
    ident: str | int = auto if given is None else given
    question = obj.get("question")
    if "question" not in obj:
        problem = 'no "question"'
    elif not isinstance(question, str):
        problem = f'"question" must be a string, not {_show(question)}'
    elif not question.strip():
        problem = '"question" is empty'
    elif len(question) > max_chars:
        problem = f'"question" has {len(question)} characters; at most {max_chars}'
    else:
        return BatchLine(n, ident, question=question, meta=meta)
    return BatchLine(n, ident, meta=meta, error=f"line {n}: {problem}")


def read_batch_input(path: Path, max_chars: int = MAX_QUESTION_CHARS) -> list[BatchLine]:
    """Every non-blank line of the JSONL file at ``path``; bad lines carry their error, duplicates included."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BatchFileError(f"{path}: cannot read the batch input ({exc.strerror or exc})") from None
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM written by some editors
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out: list[BatchLine] = []
    first: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        item = _parse_line(n, raw.removesuffix(b"\r"), max_chars)
        if item is None:
            continue
        key = str(item.id)
        if key in first:
            item = BatchLine(n, item.id, meta=item.meta,
                             error=f"line {n}: duplicate id {_show(item.id)} (first on line {first[key]})")
        else:
            first[key] = n
        out.append(item)
    return out


# output -----------------------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked_output(path: Path) -> Iterator[int]:
    """The output file opened for appending (created if missing), locked against a second writer."""
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BatchFileError(f"{path}: cannot open the batch output ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchBusyError(f"{path}: another batch is writing this file; wait for it to finish") from None
        if created:
            _fsync_dir(path.parent)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read_done(fd: int, path: Path) -> list[dict[str, Any]]:
    """The complete records of the output; a torn last line (a write cut by a kill) is truncated away."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    end = data.rfind(b"\n") + 1
    if end != len(data):
        _log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(data) - end)
        os.ftruncate(fd, end)
        os.fsync(fd)
    records = []
    for k, raw in enumerate(data[:end].split(b"\n")[:-1], 1):
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("line"), int) and "id" in record):
            raise BatchFileError(f"{path}: line {k} is not a record written by a flightdeck batch; "
                                 "write the answers to a new file")
        records.append(record)
    return records


def _write_record(fd: int, record: dict[str, Any]) -> None:
    """Append one record as one line, on disk before this returns (an fsync cost 0.2 ms here)."""
    data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    while data:  # one write for a regular file; the loop only guards a short write
        data = data[os.write(fd, data):]
    os.fsync(fd)


# running ----------------------------------------------------------------------------------------------------
@dataclass
class BatchSummary:
    """What a run did: ``answered`` and ``failed`` this run; ``skipped`` records were already in the output
    (``skipped_failed`` of them errors). ``failures`` lists every error record of the output, old and new."""

    input: str
    output: str
    total: int = 0
    answered: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0
    stopped: bool = False
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.answered + self.failed + self.skipped

    @property
    def questions_per_second(self) -> float:
        processed = self.answered + self.failed
        return round(processed / self.seconds, 3) if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every line has a record and none is an error."""
        return not self.stopped and self.done == self.total and not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "questions_per_second": self.questions_per_second,
                "complete": self.complete}


def _failure(record: dict[str, Any]) -> dict[str, Any]:
    return {"line": record["line"], "id": record["id"], "error": record["error"]}


def _error_text(line: int, exc: Exception) -> str:
    if isinstance(exc, FlightdeckError):
        return f"line {line}: {exc}"
    return f"line {line}: {type(exc).__name__}: {exc}"


class BatchRunner:
    """Answers the questions of a JSONL file into a JSONL file, resuming where a previous run stopped.

    ``answer`` takes a question and returns the answer as a dict (``Answer.to_dict()``). It is called once per
    line that has no record yet, one line at a time. An exception it raises becomes that line's error record,
    except errors of the project itself (no index, another embedding model, a missing package), which stop the
    batch: every line would fail alike, and a rerun goes on once they are fixed.
    """

    def __init__(self, answer: Callable[[str], dict[str, Any]], *,
                 max_question_chars: int = MAX_QUESTION_CHARS) -> None:
        self.answer = answer
        self.max_question_chars = max_question_chars

    def run(self, input_path: Path, output_path: Path, progress: Callable[[BatchSummary], None] | None = None,
            stop: threading.Event | None = None, warm_up: Callable[[], Any] | None = None) -> BatchSummary:
        """Answer every line of ``input_path`` that ``output_path`` has no record for.

        ``progress`` is called with the running summary once the output is read and after each record;
        ``stop`` set ends the run between two questions (``stopped`` in the summary). ``warm_up`` (load the
        model, open the index) is called before the clock starts when there is a question left to answer, so that
        questions/s measures answering.
        """
        input_path, output_path = Path(input_path), Path(output_path)
        items = read_batch_input(input_path, self.max_question_chars)
        summary = BatchSummary(str(input_path), str(output_path), total=len(items))
        with _locked_output(output_path) as fd:
            done = self._match(_read_done(fd, output_path), items, input_path, output_path)
            for record in done.values():
                summary.skipped += 1
                if "error" in record:
                    summary.skipped_failed += 1
                    summary.failures.append(_failure(record))
            if progress:
                progress(summary)
            if warm_up is not None and any(item.line not in done for item in items):
                warm_up()
            t0 = time.perf_counter()
            try:
                for item in items:
                    if item.line in done:
                        continue
                    if stop is not None and stop.is_set():
                        summary.stopped = True
                        break
                    record = self._record(item)
                    _write_record(fd, record)
                    if "error" in record:
                        summary.failed += 1
                        summary.failures.append(_failure(record))
                    else:
                        summary.answered += 1
                    summary.seconds = time.perf_counter() - t0
                    if progress:
                        progress(summary)
            finally:
                summary.seconds = time.perf_counter() - t0
        summary.failures.sort(key=lambda f: f["line"])
        return summary

    @staticmethod
    def _match(records: list[dict[str, Any]], items: list[BatchLine], input_path: Path,
               output_path: Path) -> dict[int, dict[str, Any]]:
        """The records by input line; a record that is not of this input's line stops the run."""
        by_line = {item.line: item for item in items}
        done: dict[int, dict[str, Any]] = {}
        for record in records:
            line, rid = record["line"], record["id"]
            item = by_line.get(line)
            if line in done:
                raise BatchFileError(f"{output_path} has two records for line {line}; write the answers to a new file")
            if item is None or str(item.id) != str(rid):
                here = "no question" if item is None else f"id {_show(item.id)}"
                raise BatchFileError(f"{output_path} was written from another input: its record for line {line} has "
                                     f"id {_show(rid)}, but line {line} of {input_path} has {here}; write the "
                                     "answers to a new file, or restore the input it was written from")
            done[line] = record
        return done

    def _record(self, item: BatchLine) -> dict[str, Any]:
        if item.error is not None:
            return {"id": item.id, "line": item.line, "error": item.error}
        assert item.question is not None
        try:
            answered = self.answer(item.question)
            if not isinstance(answered, dict):
                raise TypeError(f"the answer function returned {type(answered).__name__}, not a dict")
        except _FATAL:
            raise
        except Exception as exc:  # one question's failure: recorded, and the batch goes on
            _log.warning("batch line %d failed: %s", item.line, exc)
            return {"id": item.id, "line": item.line, "error": _error_text(item.line, exc)}
        record: dict[str, Any] = {"id": item.id, "line": item.line, "question": item.question}
        record.update((k, v) for k, v in answered.items() if k not in record)
        record["meta"] = item.meta
        return record


# jobs for the API -------------------------------------------------------------------------------------------
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{16}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class BatchJobs:
    """Batch jobs of the HTTP API, kept under ``<workspace root>/batch/<job id>/``.

    Each job folder holds ``input.jsonl``, ``output.jsonl`` (the :class:`BatchRunner` format) and
    ``status.json`` (state, counts, times, the owner's key id). One background thread runs the jobs one at a
    time, in the order submitted; ``answer`` is called from that thread only. A job that a killed server left
    ``queued`` or ``running`` is queued again when a ``BatchJobs`` opens the folder, and resumes where its
    output stops.
    """

    def __init__(self, workspace_root: Path, answer: Callable[[str], dict[str, Any]], *,
                 max_question_chars: int = MAX_QUESTION_CHARS, status_every_s: float = 0.5) -> None:
        self.folder = Path(workspace_root) / BATCH_FOLDER
        self.runner = BatchRunner(answer, max_question_chars=max_question_chars)
        self.status_every_s = status_every_s
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._recover()

    # the public API ---------------------------------------------------------------------------------------
    def submit(self, lines: list[dict[str, Any]] | bytes, owner: str) -> str:
        """Queue a job: ``lines`` are the input objects, or the JSONL bytes as uploaded. Returns the job id.

        Each line is checked when the job runs (a bad one gets an error record); a batch with no non-blank
        line at all is refused here.
        """
        if not isinstance(owner, str) or not owner:
            raise BatchError("a batch job needs an owner (the id of the key that submits it)")
        if isinstance(lines, bytes | bytearray):
            data = bytes(lines)
            if data and not data.endswith(b"\n"):
                data += b"\n"
        elif isinstance(lines, list):
            try:
                data = b"".join(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n" for obj in lines)
            except (TypeError, ValueError) as exc:
                raise BatchError(f"a batch line cannot be written as JSON: {exc}") from None
        else:
            raise BatchError(f"a batch is a list of objects or JSONL bytes, not {type(lines).__name__}")
        if not any(line.strip() for line in data.split(b"\n")):
            raise BatchError("the batch has no lines: send one JSON object a line, e.g. {\"question\": \"...\"}")
        job_id = secrets.token_urlsafe(12)
        folder = self.folder / job_id
        folder.mkdir(parents=True)
        with (folder / "input.jsonl").open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        (folder / "output.jsonl").touch()
        _fsync_dir(folder)
        total = len(read_batch_input(folder / "input.jsonl", self.runner.max_question_chars))
        self._save(job_id, {"id": job_id, "state": "queued", "owner": owner, "created_at": _now(),
                            "started_at": None, "finished_at": None, "total": total, "answered": 0, "failed": 0,
                            "skipped": 0, "questions_per_second": 0.0, "error": None})
        _fsync_dir(self.folder)
        self._queue.put(job_id)
        self._ensure_worker()
        return job_id

    def status(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        """The job's ``status.json``. With ``owner``, another owner's job is reported as unknown."""
        status = self._load(self._folder(job_id))
        if status is None or (owner is not None and status.get("owner") != owner):
            raise UnknownBatchJob(f"no batch job {_show(job_id, 40)}")
        return status

    def results(self, job_id: str, owner: str | None = None) -> Path:
        """The job's ``output.jsonl``: complete once the state is ``done``; while it runs, the records so far."""
        self.status(job_id, owner)
        return self._folder(job_id) / "output.jsonl"

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        """The jobs (of ``owner``, or every job), newest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for folder in self.folder.iterdir():
            if _JOB_ID.fullmatch(folder.name):
                status = self._load(folder)
                if status is not None and (owner is None or status.get("owner") == owner):
                    found.append(status)
        return sorted(found, key=lambda s: (s.get("created_at") or "", s["id"]), reverse=True)

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job is ``done`` or ``failed`` (or ``timeout`` seconds pass: TimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                status = self.status(job_id)
                if status["state"] in ("done", "failed"):
                    return status
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"batch job {job_id} is still {status['state']} after {timeout} s")
                self._changed.wait(0.5 if left is None else min(left, 0.5))

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop after the question being answered; an unfinished job stays queued for the next start."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    # inside -----------------------------------------------------------------------------------------------
    def _folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise UnknownBatchJob(f"no batch job {_show(job_id, 40)}")
        return self.folder / job_id

    @staticmethod
    def _load(folder: Path) -> dict[str, Any] | None:
        try:
            return json.loads((folder / "status.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def _save(self, job_id: str, status: dict[str, Any]) -> None:
        _write_json_atomic(self.folder / job_id / "status.json", status)
        with self._changed:
            self._changed.notify_all()

    def _recover(self) -> None:
        unfinished = [s for s in self.list() if s.get("state") in ("queued", "running")]
        for status in sorted(unfinished, key=lambda s: s.get("created_at") or ""):
            if status["state"] == "running":
                _log.warning("batch job %s was left running by a stopped server; resuming it", status["id"])
                self._save(status["id"], {**status, "state": "queued"})
            self._queue.put(status["id"])
        if unfinished:
            self._ensure_worker()

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="flightdeck-batch", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                break
            try:
                self._run(job_id)
            except Exception:  # a bug must not kill the worker and strand the jobs behind it
                _log.exception("batch job %s: unexpected failure", job_id)

    def _run(self, job_id: str) -> None:
        folder = self.folder / job_id
        status = self._load(folder)
        if status is None or status["state"] != "queued":
            return
        status.update(state="running", started_at=status.get("started_at") or _now(), error=None)
        self._save(job_id, status)
        last = [0.0]

        def progress(summary: BatchSummary) -> None:
            status.update(answered=summary.answered + summary.skipped - summary.skipped_failed,
                          failed=summary.failed + summary.skipped_failed, skipped=summary.skipped,
                          questions_per_second=summary.questions_per_second)
            if time.monotonic() - last[0] >= self.status_every_s:
                last[0] = time.monotonic()
                self._save(job_id, status)

        try:
            summary = self.runner.run(folder / "input.jsonl", folder / "output.jsonl", progress, self._stop)
        except BatchBusyError:
            _log.warning("batch job %s is being run by another process; leaving it to it", job_id)
            return
        except Exception as exc:
            _log.error("batch job %s failed: %s", job_id, exc)
            message = str(exc) if isinstance(exc, FlightdeckError) else f"{type(exc).__name__}: {exc}"
            status.update(state="failed", finished_at=_now(), error=message)
            self._save(job_id, status)
            return
        progress(summary)
        if summary.stopped:
            status.update(state="queued")
        else:
            status.update(state="done", finished_at=_now())
        self._save(job_id, status)
