"""Ingest throughput per stage, against the raw model and LlamaIndex's IngestionPipeline, in one process.

For each corpus (the first ``--limit`` BEIR SciFact records; 30 text PDFs generated from the demo corpus)
this script runs ``--repeats`` rounds of three measurements, interleaved so that a change in the machine's
load hits all of them alike, and reports each one's median:

1. flightdeck on a fresh workspace (recursive chunking, size 256, overlap 32; the default
   sentence_transformers embedder; faiss) and reads the per-stage wall seconds that the ingest and embed
   steps record in their counts: scan, parse (read + parse), clean, chunk, write, embed (model load, encode,
   read/write), index;
2. the raw model, ``model.encode(texts, batch_size=64, normalize_embeddings=True)``, on exactly the
   chunk texts flightdeck embedded, with the model flightdeck loaded in the first round;
3. LlamaIndex's ``IngestionPipeline([SentenceSplitter(chunk_size=256, chunk_overlap=32),
   HuggingFaceEmbedding(<the same local model>, embed_batch_size=64)]).run(documents=docs)`` on the same
   documents (a fresh pipeline each time, so its cache never hits; the model loaded once, before);

and finally runs flightdeck again with nothing changed (a fresh ``Project.load`` in the same process),
reporting that time as a share of the full run.

It prints Markdown tables and writes the figures as JSON (``--out``, under the git-ignored
benchmarks/results/). Rules: benchmarks/README.md — the peer in the same run, medians and ratios.

    python benchmarks/ingest_stages.py --corpus both                 # SciFact (first 1000) and the PDFs
    python benchmarks/ingest_stages.py --corpus scifact --limit 5183 --repeats 1
    python benchmarks/ingest_stages.py --corpus pdf --pdf-dir /tmp/fd-pdfs   # keep the generated PDFs
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import SCIFACT_CORPUS, embedded_texts, log, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO_CORPUS = ROOT / "examples" / "python-docs" / "corpus"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ingest_stages.json"
CHUNK_SIZE, CHUNK_OVERLAP = 256, 32
BATCH_SIZE = 64  # flightdeck's default sentence_transformers batch_size; the same for the raw model and LlamaIndex
# The PDF corpus: 30 of the 50 demo pages (sorted by path; those whose index i has i % 5 in {0, 2, 4}).
PDF_PICK = (0, 2, 4)
PDF_DATE = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)  # fixed creation date: the PDFs are byte-for-byte reproducible
_LATIN1 = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...",
                         "→": "->", "←": "<-", "≤": "<=", "≥": ">=", "≠": "!=", "•": "*", "¶": "",
                         "\u00a0": " ", "\u200b": "", "\u2009": " "})


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------------- corpora
def scifact_corpus(tmp: Path, limit: int) -> tuple[Path, dict[str, Any]]:
    if not SCIFACT_CORPUS.is_file():
        raise SystemExit(f"{SCIFACT_CORPUS}: not found; set FLIGHTDECK_SCIFACT to BEIR SciFact's corpus.jsonl")
    path = tmp / "corpus.jsonl"
    n = 0
    with SCIFACT_CORPUS.open("rb") as src, path.open("wb") as dst:
        for n, line in enumerate(src, 1):
            if n > limit:
                n -= 1
                break
            dst.write(line)
    return path, {"source": str(SCIFACT_CORPUS), "records": n, "limit": limit,
                  "how": f"the first {n} lines of BEIR SciFact corpus.jsonl"}


def scifact_peer_docs(path: Path) -> list[tuple[str, str]]:
    """``(id, title + blank line + text)`` per record: the text flightdeck's record parser sees."""
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        docs.append((str(r["_id"]), f"{r.get('title', '')}\n\n{r.get('text', '')}".strip()))
    return docs


def make_pdfs(folder: Path) -> dict[str, Any]:
    """Write the PDF corpus: demo HTML pages → text (flightdeck's HTML parser) → PDF (fpdf2, Helvetica).

    One PDF per page: the title in 18 pt bold, each section's heading in 13 pt bold, its text in 10 pt;
    characters outside Latin-1 (the core fonts' range) are transliterated or replaced by '?'.
    """
    from fpdf import FPDF  # noqa: PLC0415

    from flightdeck.data.parsers.html import html_sections  # noqa: PLC0415

    def latin1(text: str) -> str:
        return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")

    folder.mkdir(parents=True, exist_ok=True)
    pages = sorted(DEMO_CORPUS.rglob("*.html"))
    picked = [p for i, p in enumerate(pages) if i % 5 in PDF_PICK]
    files = []
    for html in picked:
        rel = html.relative_to(DEMO_CORPUS)
        title, sections = html_sections(html.read_text(encoding="utf-8"), html.stem)
        pdf = FPDF(format="A4")
        pdf.set_creation_date(PDF_DATE)
        pdf.set_auto_page_break(True, margin=15)
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.multi_cell(0, 9, latin1(title), new_x="LMARGIN", new_y="NEXT")
        for s in sections:
            heading = s.heading_path[-1] if s.heading_path else ""
            if heading and heading != title:
                pdf.ln(2)
                pdf.set_font("Helvetica", "B", 13)
                pdf.multi_cell(0, 7, latin1(heading), new_x="LMARGIN", new_y="NEXT")
            if s.text.strip():
                pdf.set_font("Helvetica", size=10)
                pdf.multi_cell(0, 5, latin1(s.text), new_x="LMARGIN", new_y="NEXT")
        out = folder / (str(rel.with_suffix("")).replace("/", "__") + ".pdf")
        data = bytes(pdf.output())
        out.write_bytes(data)
        files.append({"pdf": out.name, "from": str(rel), "pages": pdf.page_no(), "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
    return {"how": ("examples/python-docs/corpus/**/*.html sorted by path, every page whose index i has "
                    f"i % 5 in {set(PDF_PICK)}; text and sections by flightdeck's HTML parser; written with "
                    "fpdf2 (A4, Helvetica: title 18 pt bold, section headings 13 pt bold, text 10 pt; "
                    "non-Latin-1 characters transliterated or '?'); creation date fixed, so reproducible"),
            "fpdf2": _version("fpdf2"), "files": len(files), "pages": sum(f["pages"] for f in files),
            "bytes": sum(f["bytes"] for f in files),
            "digest": hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest(), "list": files}


def pdf_peer_docs(project: Any) -> list[tuple[str, str]]:
    """The text flightdeck's PDF parser extracts: the title, then each section's heading line and text.

    Parsed again here, outside any timing, so that LlamaIndex chunks and embeds the same text; its own
    PDF reader (llama-index-readers-file, pypdf) is a different parser and is not installed.
    """
    from flightdeck.data.parsers import parse  # noqa: PLC0415

    docs = []
    for binding in project.source_bindings():
        for item in binding.source.scan():
            doc = parse(item, binding.source.read(item))
            parts = [doc.title]
            for s in doc.sections:
                parts.append((s.heading_path[-1] + "\n" if s.heading_path else "") + s.text)
            docs.append((binding.document_id(item), "\n\n".join(p for p in parts if p.strip())))
    return sorted(docs)


def write_spec(tmp: Path, name: str, source: dict[str, Any]) -> Path:
    spec = {
        "project": f"ingest-stages-{name}",
        "workspace": str(tmp / "workspace"),
        "scoping": {"use_case": "rag", "objective": "retrieval_system"},
        "data": {"sources": [source],
                 "preprocessing": ["cleaning_normalization", "tokenization", "chunking", "embedding_generation"],
                 "chunking": {"provider": "recursive", "size": CHUNK_SIZE, "overlap": CHUNK_OVERLAP}},
        "retrieval": {"embedding_model": "sentence_transformers", "vector_database": "faiss",
                      "system": ["hybrid_search"], "search": {"mode": "hybrid", "k": 10}},
        "model": {"generator": {"provider": "extractive", "max_sentences": 3}},
    }
    folder = tmp / "spec"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flightdeck.yaml"
    path.write_text(json.dumps(spec, indent=2))  # JSON is YAML
    return path


# ------------------------------------------------------------------------------------------- flightdeck
def run_flightdeck(spec: Path) -> tuple[Any, dict[str, Any]]:
    from flightdeck import Project  # noqa: PLC0415

    project = Project.load(spec)
    embedder = project.embedder
    encode_cpu: list[float] = []
    original = embedder.embed_documents

    def timed(texts: list[str]) -> Any:  # process CPU seconds of the encoder calls (diagnostics)
        c = time.process_time()
        out = original(texts)
        encode_cpu.append(time.process_time() - c)
        return out

    embedder.embed_documents = timed
    la0 = loadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    summary = project.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    embedder.embed_documents = original
    if summary.status != "succeeded" or any(s.status != "succeeded" for s in summary.steps):
        raise SystemExit(f"{spec}: run {summary.status}: {[(s.step, s.status) for s in summary.steps]}")
    st = {s.step: s for s in summary.steps}
    ing, emb, idx = st["ingest"], st["embed"], st["index"]
    isec, esec = ing.counts["seconds"], emb.counts["seconds"]
    docs, chunks, embedded = int(ing.counts["documents"]), int(ing.counts["chunks"]), int(emb.counts["embedded"])
    if ing.counts.get("failed"):
        log(f"warning: {ing.counts['failed']} item(s) failed: {ing.counts.get('failures')}")
    r = {
        "docs": docs, "parsed": int(ing.counts["parsed"]), "chunks": chunks, "embedded_texts": embedded,
        "ingest_s": ing.seconds, "embed_s": emb.seconds, "index_s": idx.seconds, "total_s": summary.seconds,
        "wall_s": wall, "process_cpu_s": cpu, "ingest_stages_s": isec, "embed_stages_s": esec,
        "ingest_unaccounted_s": ing.seconds - sum(isec.values()),
        "embed_unaccounted_s": emb.seconds - sum(esec.values()),
        "encode_cpu_s": sum(encode_cpu), "loadavg1": [la0, loadavg()],
    }
    log(f"flightdeck: {docs} docs -> {chunks} chunks ({embedded} embedded) in {summary.seconds:.1f}s; "
        f"ingest {ing.seconds:.1f}s {isec}; embed {emb.seconds:.1f}s {esec}; index {idx.seconds:.2f}s")
    return project, r


def rerun(spec: Path) -> dict[str, Any]:
    from flightdeck import Project  # noqa: PLC0415

    t0 = time.perf_counter()
    project = Project.load(spec)
    summary = project.run()
    wall = time.perf_counter() - t0
    statuses = {s.step: s.status for s in summary.steps}
    if any(v != "skipped" for v in statuses.values()):
        log(f"warning: the no-change re-run did not skip every step: {statuses}")
    project.workspace.close()
    return {"s": wall, "run_s": summary.seconds, "steps": statuses,
            "step_s": {s.step: round(s.seconds, 4) for s in summary.steps}}


# ----------------------------------------------------------------------------------------------- peers
def raw_encode(model: Any, texts: list[str]) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False,
                 convert_to_numpy=True)
    return time.perf_counter() - t, time.process_time() - c


class LlamaPeer:
    """LlamaIndex's IngestionPipeline: SentenceSplitter(256, 32) + HuggingFaceEmbedding(the same model, 64)."""

    def __init__(self, model_dir: str) -> None:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding  # noqa: PLC0415

        times: list[tuple[float, float, int]] = []
        self.times = times

        class TimedEmbedding(HuggingFaceEmbedding):
            # The pipeline calls this once per embed_batch_size nodes; the wall/CPU time inside it is
            # LlamaIndex's embedding stage, the rest of pipeline.run() is splitting and node handling.
            def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
                w, c = time.perf_counter(), time.process_time()
                out = super()._get_text_embeddings(texts)
                times.append((time.perf_counter() - w, time.process_time() - c, len(texts)))
                return out

        t0 = time.perf_counter()
        self.embed_model = TimedEmbedding(model_name=model_dir, embed_batch_size=BATCH_SIZE, device="cpu",
                                          local_files_only=True)
        self.load_s = time.perf_counter() - t0

    def run(self, docs: list[tuple[str, str]], tokenizer: Any = None) -> tuple[dict[str, Any], list[str]]:
        """One ``pipeline.run``; ``tokenizer`` replaces SentenceSplitter's own (tiktoken) when given."""
        from llama_index.core import Document  # noqa: PLC0415
        from llama_index.core.ingestion import IngestionPipeline  # noqa: PLC0415
        from llama_index.core.node_parser import SentenceSplitter  # noqa: PLC0415

        documents = [Document(text=text, id_=doc_id) for doc_id, text in docs]
        pipeline = IngestionPipeline(transformations=[
            SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, tokenizer=tokenizer),
            self.embed_model])
        self.times.clear()
        la0 = loadavg()
        from transformers.utils import logging as hf_logging  # noqa: PLC0415

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the model tokenizer counting whole documents warns about length
        try:
            t, c = time.perf_counter(), time.process_time()
            nodes = pipeline.run(documents=documents, show_progress=False)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
        finally:
            hf_logging.set_verbosity(verbosity)
        embed_s = sum(x[0] for x in self.times)
        embed_cpu = sum(x[1] for x in self.times)
        assert all(n.embedding is not None for n in nodes)
        from llama_index.core.schema import MetadataMode  # noqa: PLC0415

        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return {"s": wall, "cpu_s": cpu, "nodes": len(nodes), "embed_s": embed_s, "embed_cpu_s": embed_cpu,
                "split_and_other_s": wall - embed_s, "loadavg1": [la0, loadavg()]}, texts


def token_stats(tokenizer: Any, texts: list[str], max_len: int) -> dict[str, Any]:
    """Wordpiece tokens of the model (what the encoder sees after truncation at ``max_len``)."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence length is longer than ... maximum": counted on purpose here
    try:
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]
    finally:
        hf_logging.set_verbosity(verbosity)
    return {"texts": len(texts), "tokens_seen": sum(min(n, max_len) for n in lengths),
            "tokens_total": sum(lengths), "over_max": sum(n > max_len for n in lengths),
            "mean_tokens": round(statistics.mean(lengths), 1) if lengths else 0.0, "max_len": max_len}


# ------------------------------------------------------------------------------------------------- main
def median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One flightdeck record whose timings are the per-key medians of ``runs`` (counts are the same)."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, float):
            out[k] = statistics.median(r[k] for r in runs)
        elif isinstance(v, dict):
            out[k] = {kk: statistics.median(r[k][kk] for r in runs) for kk in v}
    out["loadavg1"] = [r["loadavg1"] for r in runs]
    return out


def bench(name: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    if name == "scifact":
        path, corpus = scifact_corpus(tmp, args.limit)
        source: dict[str, Any] = {"provider": "files", "path": str(path)}
        label = f"scifact (first {corpus['records']})"
    else:
        folder = args.pdf_dir or tmp / "pdfs"
        corpus = make_pdfs(folder)
        corpus["folder"] = str(folder)
        source = {"provider": "files", "path": str(folder), "include": ["**/*.pdf"]}
        label = f"pdf ({corpus['files']} files, {corpus['pages']} pages)"
    peer: LlamaPeer | str | None = None
    fd_runs: list[dict[str, Any]] = []
    raw_s, raw_cpu, raw_load, llama_runs, llama_texts = [], [], [], [], []
    model = texts = docs = spec = None
    # Rounds of (flightdeck fresh run, raw encode, LlamaIndex run): a change in the machine's load during
    # the benchmark hits all three alike, and each figure is the median over the rounds.
    for r in range(args.repeats):
        spec = write_spec(tmp / f"round-{r}", name, source)
        log(f"{label}: round {r + 1}/{args.repeats}: flightdeck full run on a fresh workspace")
        project, fd = run_flightdeck(spec)
        fd_runs.append(fd)
        if model is None:  # the peers use the model, chunk texts and documents of the first run
            model = project.embedder.warm_up()
            texts = embedded_texts(project.workspace.root / "metadata.db")
            docs = scifact_peer_docs(path) if name == "scifact" else pdf_peer_docs(project)
            if not args.no_llamaindex:
                peer = _llama_peer(project.embedder.model_dir)
            splitter_tokenizer = None
            if args.llama_tokenizer == "model":  # the model's WordPiece tokens, special tokens not counted
                splitter_tokenizer = functools.partial(model.tokenizer.encode, add_special_tokens=False)
        elif (fd["chunks"], fd["embedded_texts"]) != (fd_runs[0]["chunks"], fd_runs[0]["embedded_texts"]):
            raise SystemExit(f"{label}: round {r + 1} made different chunks than round 1")
        if r < args.repeats - 1:
            project.workspace.close()
            del project
        raw_load.append(loadavg())
        sec, cpu = raw_encode(model, texts)
        raw_s.append(sec)
        raw_cpu.append(cpu)
        log(f"{label}: raw encode {r + 1}/{args.repeats}: {sec:.1f}s ({len(texts) / sec:.1f} texts/s), "
            f"load {raw_load[-1]}")
        if isinstance(peer, LlamaPeer):
            res, llama_texts = peer.run(docs, splitter_tokenizer)
            llama_runs.append(res)
            log(f"{label}: llamaindex {r + 1}/{args.repeats}: {res['nodes']} nodes in {res['s']:.1f}s "
                f"(embed {res['embed_s']:.1f}s)")
    log(f"{label}: no-change re-run")
    re = rerun(spec)
    project.workspace.close()

    fd = median_runs(fd_runs)
    max_len = int(model.max_seq_length)
    fd_tokens = token_stats(model.tokenizer, texts, max_len)
    raw_med = statistics.median(raw_s)
    e = fd["embed_stages_s"]
    n = fd["embedded_texts"]
    paired = [(f["embedded_texts"] / f["embed_stages_s"]["encode"]) / (len(texts) / s)
              for f, s in zip(fd_runs, raw_s, strict=True)]
    out: dict[str, Any] = {
        "corpus": label, "corpus_info": corpus, "flightdeck": fd, "flightdeck_runs": fd_runs,
        "flightdeck_tokens": fd_tokens,
        "raw": {"s": raw_s, "s_median": raw_med, "cpu_s": raw_cpu, "texts": len(texts),
                "texts_per_s_median": len(texts) / raw_med, "loadavg1": raw_load, "batch_size": BATCH_SIZE},
        "ratio_embed_encode_vs_raw": (n / e["encode"]) / (len(texts) / raw_med) if e["encode"] else None,
        "ratio_embed_encode_vs_raw_per_round": paired,
        "ratio_embed_step_excl_load_vs_raw": ((n / (fd["embed_s"] - e["model_load"])) / (len(texts) / raw_med)),
        "ratio_encode_cpu_raw_vs_flightdeck": statistics.median(raw_cpu) / fd["encode_cpu_s"]
        if fd["encode_cpu_s"] else None,
        "rerun": re, "rerun_pct_of_full": 100 * re["s"] / fd["total_s"],
    }
    if isinstance(peer, LlamaPeer):
        med = sorted(llama_runs, key=lambda x: x["s"])[len(llama_runs) // 2]
        lt = token_stats(model.tokenizer, llama_texts, max_len)
        emb_med = statistics.median(x["embed_s"] for x in llama_runs)
        fd_ingest_excl_load = fd["total_s"] - e["model_load"]
        out["llamaindex"] = {
            "runs": llama_runs, "s_median": statistics.median(x["s"] for x in llama_runs),
            "embed_s_median": emb_med, "nodes": med["nodes"], "model_load_s": peer.load_s, "tokens": lt,
            "documents": len(docs), "splitter_tokenizer": args.llama_tokenizer,
            "versions": {p: _version(p) for p in
                                                 ("llama-index-core", "llama-index-embeddings-huggingface")}}
        li = out["llamaindex"]
        out["vs_llamaindex"] = {
            # whole ingest: flightdeck's full run (scan … index, model load excluded) vs pipeline.run()
            "whole_docs_per_s_ratio": li["s_median"] / fd_ingest_excl_load,
            "whole_chunks_per_s_ratio": (fd["chunks"] / fd_ingest_excl_load) / (li["nodes"] / li["s_median"]),
            # the same without parsing (LlamaIndex was handed the parsed text)
            "excl_parse_docs_per_s_ratio": li["s_median"] / (fd_ingest_excl_load
                                                             - fd["ingest_stages_s"]["read_parse"]),
            # embedding: texts/s and model tokens/s (chunk sizes differ: tokens are the fairer unit)
            "embed_texts_per_s_ratio": (n / e["encode"]) / (li["nodes"] / emb_med),
            "embed_tokens_per_s_ratio": (fd_tokens["tokens_seen"] / e["encode"]) / (lt["tokens_seen"] / emb_med),
        }
    elif peer is not None:
        out["llamaindex"] = {"error": peer}
    return out


def _llama_peer(model_dir: str) -> LlamaPeer | str:
    try:
        return LlamaPeer(model_dir)
    except Exception as exc:  # noqa: BLE001 - reported in the results, the plain peer still runs
        log(f"LlamaIndex peer unavailable: {type(exc).__name__}: {exc}")
        return f"{type(exc).__name__}: {exc}"


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------- report
def markdown(results: list[dict[str, Any]], m: dict[str, Any], la: tuple[float, float]) -> str:
    lines: list[str] = []
    for r in results:
        fd, s, e = r["flightdeck"], r["flightdeck"]["ingest_stages_s"], r["flightdeck"]["embed_stages_s"]
        docs, parsed, chunks, n = fd["docs"], fd["parsed"], fd["chunks"], fd["embedded_texts"]

        def rate(items: int, sec: float, unit: str) -> str:
            return f"{items / sec:,.1f} {unit}/s" if sec > 0 else "–"

        def row(stage: str, sec: float, items: int | None = None, unit: str = "") -> str:
            counted = f"{items} {unit}" if items is not None else ""
            return f"| {stage} | {sec:.2f} | {counted} | {rate(items, sec, unit) if items is not None else ''} |"

        lines += [f"### {r['corpus']}: flightdeck per stage (median of {len(r['flightdeck_runs'])} fresh runs)", "",
                  "| stage | seconds | items | throughput |", "|---|---:|---:|---:|",
                  row("scan (list + hash sources)", s["scan"], docs, "docs"),
                  row("parse (read + parse)", s["read_parse"], parsed, "docs"),
                  row("clean", s["clean"], parsed, "docs"),
                  row("chunk", s["chunk"], chunks, "chunks"),
                  row("write (SQLite rows, FTS5, records)", s["write"], chunks, "chunks"),
                  row("dataset version, splits", s["finish"]),
                  row("embed: model load (incl. import)", e["model_load"]),
                  row("embed: encode", e["encode"], n, "texts"),
                  row("embed: read chunks + write vectors", e["read"] + e["write"], n, "texts"),
                  row("index (faiss build + save)", fd["index_s"], chunks, "vectors"),
                  f"| **total** | **{fd['total_s']:.2f}** | {docs} docs | {rate(docs, fd['total_s'], 'docs')}, "
                  f"{rate(chunks, fd['total_s'], 'chunks')} |", ""]
    head = ["corpus", "flightdeck encode texts/s (median)", "raw model.encode texts/s (median)",
            "embed/raw (encode)", "per round", "embed step excl. load / raw", "CPU s raw/flightdeck",
            "full run s", "no-change re-run s", "re-run %"]
    lines += ["### Embedding vs the raw model, and the no-change re-run", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    for r in results:
        fd, e = r["flightdeck"], r["flightdeck"]["embed_stages_s"]
        lines.append(f"| {r['corpus']} | {fd['embedded_texts'] / e['encode']:.1f} | "
                     f"{r['raw']['texts_per_s_median']:.1f} (n={len(r['raw']['s'])}) | "
                     f"{r['ratio_embed_encode_vs_raw']:.3f} | "
                     f"{', '.join(f'{x:.2f}' for x in r['ratio_embed_encode_vs_raw_per_round'])} | "
                     f"{r['ratio_embed_step_excl_load_vs_raw']:.3f} | "
                     f"{r['ratio_encode_cpu_raw_vs_flightdeck']:.3f} | {fd['total_s']:.2f} | "
                     f"{r['rerun']['s']:.3f} | {r['rerun_pct_of_full']:.2f}% |")
    lines.append("")
    if any("vs_llamaindex" in r for r in results):
        head = ["corpus", "tool", "docs", "chunks", "model tokens/chunk (mean)", "chunks over the model's 256",
                "seconds",
                "docs/s", "chunks/s", "embed s", "embed chunks/s", "embed tokens/s"]
        lines += ["### flightdeck vs LlamaIndex IngestionPipeline (same model, chunk size 256, overlap 32)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in results:
            if "vs_llamaindex" not in r:
                continue
            fd, e, ft = r["flightdeck"], r["flightdeck"]["embed_stages_s"], r["flightdeck_tokens"]
            li, lt = r["llamaindex"], r["llamaindex"]["tokens"]
            fd_s = fd["total_s"] - e["model_load"]
            lines.append(f"| {r['corpus']} | flightdeck (full run, load excl.; median of {len(r['flightdeck_runs'])}) "
                         f"| {fd['docs']} | {fd['chunks']} | "
                         f"{ft['mean_tokens']} | {ft['over_max']} | {fd_s:.2f} | {fd['docs'] / fd_s:.2f} | "
                         f"{fd['chunks'] / fd_s:.1f} | {e['encode']:.2f} | {fd['embedded_texts'] / e['encode']:.1f} | "
                         f"{ft['tokens_seen'] / e['encode']:,.0f} |")
            lines.append(f"| {r['corpus']} | LlamaIndex (median of {len(li['runs'])}; splitter counts "
                         f"{li['splitter_tokenizer']} tokens) | {li['documents']} | "
                         f"{li['nodes']} | {lt['mean_tokens']} | {lt['over_max']} | {li['s_median']:.2f} | "
                         f"{li['documents'] / li['s_median']:.2f} | {li['nodes'] / li['s_median']:.1f} | "
                         f"{li['embed_s_median']:.2f} | {li['nodes'] / li['embed_s_median']:.1f} | "
                         f"{lt['tokens_seen'] / li['embed_s_median']:,.0f} |")
        lines += ["", "| corpus | whole ingest docs/s ratio flightdeck/LlamaIndex | same, excl. flightdeck's parse "
                  "| whole chunks/s ratio | embed chunks/s ratio | embed tokens/s ratio |", "|---|---|---|---|---|---|"]
        for r in results:
            if "vs_llamaindex" in r:
                v = r["vs_llamaindex"]
                lines.append(f"| {r['corpus']} | {v['whole_docs_per_s_ratio']:.3f} "
                             f"| {v['excl_parse_docs_per_s_ratio']:.3f} | {v['whole_chunks_per_s_ratio']:.3f} "
                             f"| {v['embed_texts_per_s_ratio']:.3f} | {v['embed_tokens_per_s_ratio']:.3f} |")
        lines.append("")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, torch {m['torch']}, "
                 f"sentence-transformers {m['sentence_transformers']}, Python {m['python']}; "
                 f"1-min load average {la[0]} before, {la[1]} after.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", choices=["scifact", "pdf", "both"], default="both")
    p.add_argument("--limit", type=int, default=1000, help="first N SciFact records (default 1000; all: 5183)")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds of (flightdeck, raw encode, LlamaIndex); medians reported")
    p.add_argument("--no-llamaindex", action="store_true", help="only the raw model as the peer")
    p.add_argument("--llama-tokenizer", choices=["tiktoken", "model"], default="tiktoken",
                   help="what SentenceSplitter counts chunk_size in: its default (tiktoken cl100k_base) or "
                        "the embedding model's own tokenizer, as flightdeck does")
    p.add_argument("--pdf-dir", type=Path, default=None, help="write the PDF corpus here (default: a temp folder)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.limit < 1:
        p.error("--repeats and --limit must be at least 1")
    la0 = loadavg()
    t0 = time.perf_counter()
    results = []
    for name in (["scifact", "pdf"] if args.corpus == "both" else [args.corpus]):
        with tempfile.TemporaryDirectory(prefix=f"flightdeck-stages-{name}-") as tmp:
            results.append(bench(name, Path(tmp), args))
    la = (la0, loadavg())
    m = machine()
    print(markdown(results, m, la))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "ingest_stages", "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/ingest_stages.py", *(argv if argv is not None else sys.argv[1:])]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {**m, "loadavg1_before": la[0], "loadavg1_after": la[1]},
        "seconds": time.perf_counter() - t0, "results": results}, indent=2))
    log(f"wrote {args.out} ({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
