"""Preparing parsed documents for chunking: the ``data.cleaning`` settings applied, one function per concern.

- :func:`normalise_document`: Unicode/whitespace normalisation of the title and every section;
- :func:`redact_document`: PII redaction of the title, metadata strings, section text and headings;
- :func:`learnt_boilerplate`: the boilerplate lines of one source, from the documents read this run and
  what earlier runs learnt; :func:`~flightdeck.data.cleaning.strip_boilerplate` removes them;
- :func:`with_language`: the document's language in its metadata (a language the source states wins);
- :func:`document_signature`: what duplicate detection compares.

Each is pure (no workspace, no I/O), so each is tested alone; the ingest step runs them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from flightdeck.data.cleaning import boilerplate_keys, clean_text
from flightdeck.data.dedupe import Signature, minhash_bytes, text_hash
from flightdeck.data.documents import Document
from flightdeck.spec.cleaning import CleaningSettings

__all__ = ["TEXT_ONLY", "normalise_document", "redact_document", "prepare_document", "learnt_boilerplate",
           "with_language", "document_signature"]

# Cleaning when the spec gives no data.cleaning settings: normalisation only.
TEXT_ONLY = CleaningSettings(language=False, dedupe="off", strip_boilerplate=False)


def normalise_document(doc: Document) -> Document:
    """``doc`` with :func:`~flightdeck.data.cleaning.clean_text` applied to its title and every section."""
    sections = tuple(replace(s, text=clean_text(s.text)) for s in doc.sections)
    return replace(doc, title=clean_text(doc.title), sections=sections)


def redact_document(doc: Document, types: Sequence[str]) -> Document:
    """``doc`` with the PII of ``types`` redacted everywhere a store could keep it: title, metadata strings,
    section text and section headings."""
    from flightdeck.data.pii import redact_pii, redact_value

    return replace(doc, title=redact_pii(doc.title, types), metadata=redact_value(doc.metadata, types),
                   sections=tuple(replace(s, text=redact_pii(s.text, types),
                                          heading_path=tuple(redact_pii(h, types) for h in s.heading_path))
                                  for s in doc.sections))


def prepare_document(doc: Document, cleaning: CleaningSettings) -> Document:
    """Per-document cleaning: normalisation, then PII redaction when ``cleaning.pii`` asks for it.

    Redaction happens before chunking, so that no store (chunks, keyword index, embeddings, document records)
    ever holds the original values.
    """
    doc = normalise_document(doc)
    if cleaning.pii == "redact":
        doc = redact_document(doc, cleaning.pii_types)
    return doc


def learnt_boilerplate(documents: Sequence[Document], source_size: int, known: set[str],
                       cleaning: CleaningSettings) -> set[str]:
    """The boilerplate line keys of one source after this run.

    Lines learnt from a full read of the source (``documents`` are all its ``source_size`` items) replace what
    was ``known``; an incremental run (a few documents) can only add to it, and documents re-read later still
    lose the known lines.
    """
    found = boilerplate_keys(documents, source_size, cleaning.boilerplate_min_documents, cleaning.boilerplate_share)
    return found if len(documents) == source_size else known | found


def with_language(doc: Document) -> Document:
    """``doc`` with ``metadata["language"]`` detected, unless the source stated one (a record field)."""
    if doc.metadata.get("language"):
        return doc
    from flightdeck.data.language import detect_language

    return replace(doc, metadata={**doc.metadata, "language": detect_language(doc.text)})


def document_signature(doc_id: str, doc: Document, near: bool) -> Signature:
    """What duplicate detection compares: the text's hash, and its MinHash when ``near`` duplicates count."""
    text = doc.text
    return Signature(doc_id, text_hash(text), minhash_bytes(text) if near else None, empty=not text.strip())
