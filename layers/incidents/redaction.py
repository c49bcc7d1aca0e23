"""Free text of a case as the public may read it: phone numbers, resident ID numbers and
vehicle plates that a reporter wrote down are masked (``***``); the staff read the text as
written."""

from __future__ import annotations

import re

MASK = "***"
MOBILE = re.compile(r"(?<![0-9])(?:\+?86[\s-]?)?1[3-9][0-9](?:[\s-]?[0-9]{4}){2}(?![0-9])")
"""A mainland mobile number: 11 digits (3-4-4, spaces or dashes allowed), +86 optional."""
LANDLINE = re.compile(
    r"(?<![0-9])(?:\(0[0-9]{2,3}\)|0[0-9]{2,3})[\s-]?[2-9][0-9]{2,3}[\s-]?[0-9]{4}(?![0-9])"
)
"""A landline with its area code: 0755-2345 6789, (020) 8765 4321."""
RESIDENT_ID = re.compile(
    r"(?<![0-9])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
)
"""An 18-character resident identity card number (birth date inside)."""
PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]"
    r"[A-HJ-NP-Z][\s·•-]?[A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳]"
)
"""A vehicle plate: province, issuing letter, then 5 (6 for new-energy) letters or digits."""
PATTERNS = (RESIDENT_ID, MOBILE, LANDLINE, PLATE)


def scrub(text: str | None) -> str | None:
    """``text`` with every phone number, resident ID number and vehicle plate masked."""
    if not text:
        return text
    for pattern in PATTERNS:
        text = pattern.sub(MASK, text)
    return text
