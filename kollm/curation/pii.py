"""Redact Korean personal identifiers: 주민등록번호, phone numbers, e-mail, bank-account-like numbers.

Patterns are anchored on digit boundaries (`(?<!\\d)` / `(?!\\d)`) so a match is never a
slice of a longer number, and checked for shape (a real birth date, a real area or mobile
prefix, a bank-like digit count) so dates, years, prices and scores are left alone.
"""

from __future__ import annotations

import re

PLACEHOLDERS = {"rrn": "[주민등록번호]", "phone": "[전화번호]", "email": "[이메일]", "account": "[계좌번호]"}

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# YYMMDD-GNNNNNN; G is 1-8 (1-4 citizens by century/sex, 5-8 registered foreigners).
# The check digit is not required: numbers issued since Oct 2020 have none.
RRN = re.compile(r"(?<!\d)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?[-–]?\s?[1-8]\d{6}(?!\d)")
_SEP = r"[-. ]?"
PHONE = re.compile(
    r"(?<![\d-])(?:\+82[- ]?|0)(?:"
    r"1[016789]" + _SEP + r"\d{3,4}" + _SEP + r"\d{4}"  # mobile 010-1234-5678, 01012345678
    r"|2" + _SEP + r"\d{3,4}" + _SEP + r"\d{4}"  # Seoul 02-123-4567
    r"|(?:3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)" + _SEP + r"\d{3,4}" + _SEP + r"\d{4}"  # regions, 070
    r")(?![\d-])"
)
# Bank accounts are printed as 3-4 hyphen-separated digit groups of 10-14 digits in all
# (110-123-456789, 1002-123-456789, 123-45-67890-1). Dates (2020-01-01) have 8.
ACCOUNT = re.compile(r"(?<![\d-])\d{2,6}(?:-\d{2,6}){2,3}(?![\d-])")


def _account(m: re.Match) -> str:
    digits = sum(c.isdigit() for c in m.group(0))
    return PLACEHOLDERS["account"] if 10 <= digits <= 14 else m.group(0)


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Returns (text with identifiers replaced by placeholders, count per kind)."""
    counts = {}
    for kind, pattern in (("email", EMAIL), ("rrn", RRN), ("phone", PHONE)):
        text, n = pattern.subn(PLACEHOLDERS[kind], text)
        if n:
            counts[kind] = n
    before = text.count(PLACEHOLDERS["account"])
    text = ACCOUNT.sub(_account, text)
    n = text.count(PLACEHOLDERS["account"]) - before
    if n:
        counts["account"] = n
    return text, counts
