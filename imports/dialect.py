"""How a CSV file's bytes are to be read: its encoding and its delimiter, as declared
by the request or found from the file's first bytes. Pure: no database, no Django.

Encoding (docs/imports.md, "Encodings"):

1. A declared encoding (``charset`` of the Content-Type, or ``encoding``) is used as it
   is, after a check that the first bytes decode in it.
2. A byte-order mark decides: UTF-8 (BOM dropped), UTF-16 LE/BE.
3. Bytes that are valid UTF-8 are UTF-8 (a single-byte file of accented names is almost
   never valid UTF-8 by chance).
4. Otherwise one of the single-byte code pages Excel and older systems write in Europe:
   Windows-1252, Windows-1250 or ISO-8859-15. They agree on ASCII and on most accented
   letters and differ at a handful of bytes, so a general-purpose detector's first
   guess is not reliable for a short file of names. Each is scored on what its
   decoding makes of the words that hold non-ASCII bytes: a word whose accented letters
   all belong to one European language's alphabet counts for it, a word with a symbol
   or control character between letters (``M³ller``, ``Jürgen`` read as ``J¸rgen``)
   counts against it, a byte the code page does not define rules it out. The highest
   score wins; a tie goes to Windows-1252, then Windows-1250, then ISO-8859-15: a tie
   means the file's words read the same in both, which is common (ä ö ü ß é are the same
   bytes in all three).
5. When none of them reads the file as words (e.g. Cyrillic or Greek text),
   charset-normalizer's answer is taken.

Delimiter: ``,`` ``;`` TAB or ``|``, declared, or the one that splits the header and the
first lines into the same number of fields (more than one) most consistently; a file
with one column is comma-separated.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import unicodedata
from dataclasses import dataclass

# What detection reads of a file; an encoding problem beyond it is its row's error.
SAMPLE_BYTES = 1024 * 1024

DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
DELIMITER_NAMES: dict[str, str] = {
    **{name: d for d, name in DELIMITERS.items()},
    ",": ",",
    ";": ";",
    "\t": "\t",
    "|": "|",
    "\\t": "\t",
    "tab": "\t",
}

# The single-byte candidates, best first (the order that breaks a tie).
SINGLE_BYTE = ("cp1252", "cp1250", "iso8859-15")

# What each name means to a user (what the job and the preview show).
DISPLAY = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "utf-16": "utf-16",
    "utf-16-le": "utf-16-le",
    "utf-16-be": "utf-16-be",
    "cp1252": "windows-1252",
    "cp1250": "windows-1250",
    "cp1251": "windows-1251",
    "iso8859-15": "iso-8859-15",
    "iso8859-1": "iso-8859-1",
    "latin-1": "iso-8859-1",
    "iso8859-2": "iso-8859-2",
}

# The accented letters of the languages of European contact lists (lower case).
_ALPHABETS: dict[str, str] = {
    "german": "äöüß",
    "french": "àâæçéèêëîïôœùûüÿ",
    "spanish": "áéíñóúü",
    "portuguese": "áâãàçéêíóôõú",
    "italian": "àèéìíîòóùú",
    "dutch": "éëïóöü",
    "nordic": "åäæøöé",
    "icelandic": "áðéíóúýþæö",
    "polish": "ąćęłńóśźż",
    "czech": "áčďéěíňóřšťúůýž",
    "slovak": "áäčďéíĺľňóôŕšťúýž",
    "hungarian": "áéíóöőúüű",
    "croatian": "čćđšž",
    "slovene": "čšž",
    "romanian": "ăâîșțşţ",
    "turkish": "çğıöşü",
    "lithuanian": "ąčęėįšųūž",
    "latvian": "āčēģīķļņšūž",
    "estonian": "äöõüšž",
}
_ALPHABET_SETS = [frozenset(letters) for letters in _ALPHABETS.values()]


class DialectError(ValueError):
    """The declared or found encoding or delimiter cannot read the file: a 400."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Dialect:
    encoding: str  # a Python codec name
    delimiter: str
    encoding_reason: str = ""
    delimiter_reason: str = ""

    @property
    def encoding_label(self) -> str:
        return encoding_label(self.encoding)


def encoding_label(name: str) -> str:
    return DISPLAY.get(name, name)


def encoding_clean(name: str) -> str:
    """A declared encoding as a Python codec name; unknown or non-text codecs are refused."""
    text = (name or "").strip().strip('"').lower()
    try:
        info = codecs.lookup(text)
    except LookupError:
        raise DialectError(
            f"encoding {name!r} is not an encoding this server knows (e.g. utf-8, windows-1252, iso-8859-15).",
            field="encoding",
        ) from None
    if not getattr(info, "_is_text_encoding", True):
        raise DialectError(f"encoding {name!r} is not a text encoding.", field="encoding")
    return {"utf_8": "utf-8", "utf_8_sig": "utf-8-sig", "utf_16": "utf-16"}.get(info.name, info.name)


def delimiter_clean(value: str) -> str:
    text = value if value in ("\t",) else (value or "").strip().lower()
    try:
        return DELIMITER_NAMES[text]
    except KeyError:
        raise DialectError(
            f"delimiter {value!r} is not one of , ; | or tab (also: comma, semicolon, pipe, tab).",
            field="delimiter",
        ) from None


# --- encoding ------------------------------------------------------------------------------


def sniff_encoding(sample: bytes, *, complete: bool) -> tuple[str, str]:
    """(codec name, the reason, for a person) for a file that starts with ``sample``;
    ``complete``: the sample is the whole file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "the file starts with a UTF-8 byte-order mark"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "the file starts with a UTF-16 byte-order mark"
    head = sample[:4096]
    if len(head) >= 4 and head.count(0) * 3 >= len(head):
        # Every other byte NUL: UTF-16 without its mark (ASCII text with zeros between).
        zeros_odd = head[1::2].count(0)
        return (
            ("utf-16-le", "every second byte is zero (UTF-16 LE without a byte-order mark)")
            if zeros_odd > head[0::2].count(0)
            else ("utf-16-be", "every second byte is zero (UTF-16 BE without a byte-order mark)")
        )
    if _decodes(sample, "utf-8", complete=complete):
        if any(byte >= 0x80 for byte in sample):
            return "utf-8", "the file's accented characters are valid UTF-8"
        return "utf-8", "the file is plain ASCII (UTF-8 reads it as it is)"
    scored = [(score, name) for name in SINGLE_BYTE if (score := _words_score(sample, name)) is not None]
    if scored:
        best = max(scored, key=lambda item: (item[0], -SINGLE_BYTE.index(item[1])))
        if best[0] >= 0:
            others = [encoding_label(name) for score, name in scored if name != best[1] and score == best[0]]
            reason = "not UTF-8; its accented words read as words in " + encoding_label(best[1])
            if others:
                reason += f" (as in {', '.join(others)}: the bytes it has mean the same there)"
            return best[1], reason
    guess = _charset_normalizer_guess(sample)
    if guess:
        return guess, "not UTF-8 nor a Western or Central European code page; charset-normalizer's best guess"
    return "cp1252", "not UTF-8; no code page reads it as words, so Windows-1252, the most common"


def _decodes(data: bytes, encoding: str, *, complete: bool) -> bool:
    return decode_problem(data, encoding, complete=complete) is None


def decode_problem(data: bytes, encoding: str, *, complete: bool) -> str | None:
    """Where ``data`` stops decoding in ``encoding`` ("line 3, column 7: byte 0xFC"), or None.
    A sample cut off inside a multi-byte character is not a problem (``complete`` False)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        decoder.decode(data, final=complete)
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        bad = data[start : min(exc.end, start + 4)]
        shown = " ".join(f"0x{byte:02X}" for byte in bad)
        return f"line {line}, column {column}: byte {shown}"
    return None


def _words_score(sample: bytes, encoding: str) -> int | None:
    """How well ``encoding`` reads the sample's non-ASCII words (None: it cannot read it)."""
    try:
        text = sample.decode(encoding)
    except UnicodeDecodeError:
        return None
    score = 0
    per_language = [0] * len(_ALPHABET_SETS)
    for word in _non_ascii_words(text):
        if any(unicodedata.category(ch) == "Cc" for ch in word):
            return None  # a C1 control character: not text in this code page
        letters = frozenset(ch.lower() for ch in word if ord(ch) >= 0x80 and ch.isalpha())
        inside = word[1:-1]
        if any(ord(ch) >= 0x80 and not ch.isalpha() for ch in inside):
            score -= 3  # a symbol between letters: "M³ller", "Ko¿lowski"
            continue
        fits = [i for i, alphabet in enumerate(_ALPHABET_SETS) if letters and letters <= alphabet]
        if not fits:
            score -= 1  # letters no one language writes together, or a symbol for a word
            continue
        score += 1
        for i in fits:
            per_language[i] += 1
    # A list is mostly in one language: a reading that puts more words in one language
    # beats one that needs a different language for every word ("Œuvres Noël" is French
    # in ISO-8859-15, "Ľuvres Noël" Slovak and French in Windows-1250).
    return score + max(per_language)


def _non_ascii_words(text: str) -> list[str]:
    """The runs of non-space, non-delimiter characters that hold a non-ASCII character."""
    words: list[str] = []
    for raw in text.replace(",", " ").replace(";", " ").replace("|", " ").replace('"', " ").split():
        if any(ord(ch) >= 0x80 for ch in raw):
            words.append(raw.strip(".:()[]'"))
    return words


def _charset_normalizer_guess(sample: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a dependency of ours
        return None
    best = from_bytes(sample[:SAMPLE_BYTES]).best()
    if best is None:
        return None
    try:
        return encoding_clean(best.encoding)
    except DialectError:
        return None


# --- delimiter ------------------------------------------------------------------------------


def sniff_delimiter(text: str) -> tuple[str, str]:
    """(delimiter, reason) from the first lines of the decoded file."""
    lines = list(itertools.islice(io.StringIO(text, newline=""), 50))  # only the lines it reads
    if len(lines) > 1 and not text.endswith(("\n", "\r")) and len(text) >= SAMPLE_BYTES // 2:
        lines = lines[:-1]  # the sample may end inside a line
    best: tuple[float, int, str] | None = None
    for delimiter in DELIMITERS:
        counts = [len(record) for record in _records(lines, delimiter) if any(cell.strip() for cell in record)]
        if not counts or counts[0] < 2:
            continue
        header = counts[0]
        rest = counts[1:]
        consistency = (sum(1 for c in rest if c == header) / len(rest)) if rest else 1.0
        candidate = (consistency, header, delimiter)
        if best is None or (candidate[0], candidate[1]) > (best[0], best[1]):
            best = candidate
    if best is None:
        return ",", "no delimiter splits the header; one column"
    consistency, header, delimiter = best
    if consistency == 1.0:
        return delimiter, f"the {DELIMITERS[delimiter]} splits the header and every line read into {header} fields"
    return delimiter, f"the {DELIMITERS[delimiter]} splits the header into {header} fields and most lines alike"


def _records(lines: list[str], delimiter: str) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO("".join(lines), newline=""), delimiter=delimiter))
    except csv.Error:
        return []


# --- both -------------------------------------------------------------------------------------


def resolve_dialect(
    sample: bytes | str, *, complete: bool, encoding: str | None = None, delimiter: str | None = None
) -> Dialect:
    """The dialect to read a file with, from its first bytes (``sample``) and what the
    request declared. Raises ``DialectError`` when the file does not decode in the
    declared (or found) encoding within the sample."""
    if isinstance(sample, str):  # text already (a csv string in a JSON body)
        text = sample
        name, reason = "utf-8", "the CSV was sent as text"
    else:
        if encoding:
            name, reason = encoding_clean(encoding), "declared by the request"
        else:
            name, reason = sniff_encoding(sample, complete=complete)
        problem = decode_problem(sample, name, complete=complete)
        if problem is not None:
            hint = "" if encoding else " (found from its first bytes)"
            suggestion, _why = sniff_encoding(sample, complete=complete) if encoding else ("", "")
            also = (
                f" It reads as {encoding_label(suggestion)}; send encoding={encoding_label(suggestion)}"
                if suggestion and suggestion != name
                else " Declare its encoding with the encoding parameter (e.g. encoding=windows-1252)"
            )
            raise DialectError(
                f"The file is not valid {encoding_label(name)}{hint}: {problem}.{also}.", field="encoding"
            )
        text = codecs.getincrementaldecoder(name)("strict").decode(sample, final=complete)
    if delimiter:
        sep, why = delimiter_clean(delimiter), "declared by the request"
    else:
        sep, why = sniff_delimiter(text.lstrip("\ufeff"))
    return Dialect(encoding=name, delimiter=sep, encoding_reason=reason, delimiter_reason=why)
