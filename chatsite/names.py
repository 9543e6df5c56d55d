"""Unicode rules for names people pick (group names, usernames): pure Python, no ORM.

Two names that look alike on screen should not both exist, or one can pose as the other.
`name_key` maps a name to a "skeleton" that is the same for look-alikes:

- NFKC folds compatibility forms (fullwidth `ａ`, mathematical `𝐚`) into plain letters;
- casefold makes `Alice` and `alice` one name;
- Default_Ignorable_Code_Point characters are dropped: they draw nothing (U+200B ZERO WIDTH
  SPACE, U+FEFF, U+3164 HANGUL FILLER, which is a letter (Lo) by category, so categories alone
  miss it). The property comes from the `regex` module's Unicode tables;
- runs of white space count as one space (a browser draws them so);
- each character is replaced by the prototype of its confusables class (Cyrillic `а` -> Latin
  `a`, `0` -> `O`, `m` -> `rn`), from Unicode's confusables.txt as the maintained
  `confusable-homoglyphs` package ships it (UTS #39 "skeleton").
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache

import regex
from confusable_homoglyphs.confusables import confusables_data

MAX_KEY_LENGTH = 255
INVISIBLE = regex.compile(r"\p{Default_Ignorable_Code_Point}+")
BIDI_CONTROL = regex.compile(r"\p{Bidi_Control}")
VISIBLE = regex.compile(r"[^\s\p{Default_Ignorable_Code_Point}]")
SPACES = regex.compile(r"\s+")
_LRM = "\u200e"  # confusables.txt wraps right-to-left characters in LRMs for display


def has_visible(text: str) -> bool:
    """True if `text` draws something: not only white space and invisible characters."""
    return VISIBLE.search(text) is not None


def has_bidi_control(text: str) -> bool:
    """True if `text` holds a bidirectional control (U+202E RIGHT-TO-LEFT OVERRIDE, ...)."""
    return BIDI_CONTROL.search(text) is not None


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Each confusable character's prototype.

    The package stores every (source, prototype) pair of confusables.txt both ways, so each
    class is a star: the prototype is the one node linked to several others. A class of two
    single characters has no such node; its smaller character stands for both.
    """
    table = {}
    for raw, entries in confusables_data.items():
        char = raw.replace(_LRM, "")
        if len(char) != 1 or len(entries) != 1:
            continue  # a sequence, or the centre of its class: it maps to itself
        other = entries[0]["c"].replace(_LRM, "")
        if len(confusables_data.get(entries[0]["c"], ())) > 1 or len(other) > 1 or other < char:
            table[char] = other
    return table


def skeleton(text: str) -> str:
    prototypes = _prototypes()
    return "".join(prototypes.get(char, char) for char in text)


def name_key(name: str) -> str:
    """The key two look-alike names share; stored in a unique column to refuse the second.

    A key longer than the column (NFKC and the skeleton can lengthen text) is stored as
    its SHA-256, so it still compares equal to itself.
    """
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", name).casefold())
    text = SPACES.sub(" ", text).strip()
    text = unicodedata.normalize("NFKC", skeleton(text)).casefold()
    if len(text) > MAX_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text
