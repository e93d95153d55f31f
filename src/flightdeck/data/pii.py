"""PII redaction: e-mail addresses, phone numbers, card numbers, IBANs and account numbers.

Part of the ``cleaning_normalization`` preprocessor (``data.cleaning.pii: redact``). Redaction runs on the
parsed text before anything is chunked or stored, so chunks, the keyword index, embeddings and artifacts
only ever see the placeholders (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[ACCOUNT]``).

Number patterns are checked, not just matched, to keep false positives down: a card number must pass the
Luhn check, an IBAN must have its country's length and pass the ISO 7064 mod-97 check, a phone number
needs a phone-like shape (a ``+`` country code, a ``(555) 123-4567``/``555-123-4567`` grouping, or a
national number starting with 0), and a bare account number is redacted only after a word such as
"account", "acct" or "Konto". Plain numbers, dates, versions and failed checksums are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

__all__ = ["PII_TYPES", "PiiType", "redact_pii", "redact_value", "luhn_valid", "iban_valid"]

PiiType = Literal["email", "phone", "card", "iban", "account"]
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "card", "iban", "account")

# IBAN length per country (SWIFT IBAN registry); a candidate of another length is not an IBAN.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
                    r"[A-Za-z]{2,}(?![\w-])")
# Start of an IBAN: country code and check digits; the rest is walked by _iban_spans.
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})\d{2}")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d-]|[.,]\d)")
_PHONES = (
    # international: +CC then 2-6 groups, optionally one in parentheses
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![\w-])"),
    # North American grouping: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567
    re.compile(r"(?<![\w.-])(?<!\d[ /-])(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[-. ])[2-9]\d{2}[-. ]\d{4}(?![\w-]|[.,]\d)"),
    # national numbers with a trunk 0: 030 12345678, 089/1234-5678, 020 7946 0958, 06 12 34 56 78
    re.compile(r"(?<![\w.-])(?<!\d[ /-])0\d{1,4}(?:[ /-]\d{2,8}){1,4}(?![\w-]|[.,]\d)"),
)
_PHONE_DIGITS = (8, 15)
_ACCOUNT = re.compile(
    r"(?i)\b(?:account|acct|a/c|konto|kontonummer|compte|cuenta)\.?"
    r"(?:\s*(?:number|no\.?|nr\.?|num\.?|#))?\s*[:#]?\s*(\d(?:[ -]?\d){5,22})(?![\d-])")


def luhn_valid(number: str) -> bool:
    """True when the digits of ``number`` (13-19 of them) pass the Luhn check of payment cards."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces allowed) has its country's length and passes the mod-97 check."""
    s = iban.replace(" ", "").upper()
    if len(s) != _IBAN_LENGTHS.get(s[:2], -1) or not s.isalnum() or not s[2:4].isdigit():
        return False
    # Move the first four characters to the end and read letters as numbers A=10 … Z=35.
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_spans(text: str) -> Iterable[tuple[int, int]]:
    pos = 0
    while (m := _IBAN_START.search(text, pos)) is not None:
        length = _IBAN_LENGTHS.get(m.group(1))
        end = None
        if length is not None:
            # Walk characters, allowing single spaces between them, until the country's length is reached.
            i, n, compact = m.end(), 4, m.group(0)
            while n < length and i < len(text):
                if text[i] == " " and i + 1 < len(text) and text[i + 1].isalnum() and text[i - 1] != " ":
                    i += 1
                    continue
                if not (text[i].isdigit() or "A" <= text[i] <= "Z"):
                    break
                compact += text[i]
                n += 1
                i += 1
            if n == length and not (i < len(text) and text[i].isalnum()) and iban_valid(compact):
                end = i
        if end is not None:
            yield m.start(), end
            pos = end
        else:
            pos = m.start() + 1


def _sub_spans(text: str, spans: Iterable[tuple[int, int]], placeholder: str) -> str:
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _redact_email(text: str) -> str:
    return _EMAIL.sub("[EMAIL]", text)


def _redact_iban(text: str) -> str:
    return _sub_spans(text, list(_iban_spans(text)), "[IBAN]")


def _redact_card(text: str) -> str:
    return _CARD.sub(lambda m: "[CARD]" if luhn_valid(m.group(0)) else m.group(0), text)


def _redact_account(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        start, end = m.span(1)
        return m.group(0)[: start - m.start()] + "[ACCOUNT]" + m.group(0)[end - m.start():]

    return _ACCOUNT.sub(repl, text)


def _redact_phone(text: str) -> str:
    lo, hi = _PHONE_DIGITS

    def repl(m: re.Match[str]) -> str:
        return "[PHONE]" if lo <= _digits(m.group(0)) <= hi else m.group(0)

    for pattern in _PHONES:
        text = pattern.sub(repl, text)
    return text


# Most specific first: an IBAN or a card number must not be half-eaten by the phone patterns, and the
# placeholders contain no digits, so later patterns cannot match inside them.
_REDACTORS: tuple[tuple[PiiType, Callable[[str], str]], ...] = (
    ("email", _redact_email),
    ("iban", _redact_iban),
    ("card", _redact_card),
    ("account", _redact_account),
    ("phone", _redact_phone),
)


def redact_pii(text: str, types: Iterable[str] = PII_TYPES) -> str:
    """Return ``text`` with every PII value of the given ``types`` replaced by its placeholder."""
    wanted = set(types)
    for kind, redactor in _REDACTORS:
        if kind in wanted:
            text = redactor(text)
    return text


def redact_value(value: Any, types: Iterable[str] = PII_TYPES) -> Any:
    """Redact every string inside ``value`` (metadata: strings, lists and dicts, other values kept)."""
    types = tuple(types)
    if isinstance(value, str):
        return redact_pii(value, types)
    if isinstance(value, dict):
        return {k: redact_value(v, types) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, types) for v in value)
    return value
