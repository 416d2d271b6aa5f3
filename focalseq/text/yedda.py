"""YEDDA line-annotation reader and writer.

A YEDDA file is plain text in which spans are marked ``[@text#Label*]``. A span may
start mid-line and cover many lines; text outside every span is unlabelled. The reader
turns a file into one :class:`Line` per non-empty physical line and reports every
irregularity as a :class:`Problem` instead of failing, so that a Spark job over
thousands of files can account for every line:

    count_nonempty_lines(text) == len(lines) + sum(p.lines_dropped for p in problems)

Grammar, as read here:

* A span opens at ``[@`` and runs to the *last* closer ``#Label*]`` (``Label`` matching
  ``[A-Za-z][A-Za-z0-9_ -]*``) before the next ``[@`` or the end of the file. Span text
  may therefore contain ``#``, ``[``, ``]``, ``*`` and even earlier ``#Label*]``
  sequences, but never ``[@``. Labels are returned verbatim.
* A closer may carry a label set, labels joined by ``|`` (``#joy|anger*]``, matching
  ``LABEL_SET_PATTERN``); the line's label is then that raw string, and
  :class:`LabelMap` with ``multi_label`` maps it label by label. An empty part
  (``#joy|*]``, ``#|anger*]``) makes the closer a ``bad_label``.
* Text between a closer and the next ``[@`` lies outside any span (label ``None``).
* Escapes: ``[\\@`` in the file is a literal ``[@`` of the text and ``*\\]`` a literal
  ``*]``; more generally ``[``, then n >= 1 backslashes, then ``@`` reads as ``[``,
  n - 1 backslashes, ``@`` (and so for ``*`` ... ``]``). Escaped sequences neither open
  nor close spans. :func:`format_yedda` writes them (:func:`escape_text`), so any text
  reads back exactly; every other backslash is text.
* A line made of text from several regions takes the label covering most of its
  non-space characters; ties go to the region that comes first on the line. A line
  holding only markup (``[@``, ``#Table*]``, ``[@#Page-header*]``) is still a
  non-empty physical line: it yields a ``Line`` with ``text == ""`` and the label of the
  first span its markup belongs to.

Recovery (never an exception unless ``strict=True``; ``lines_dropped`` is always 0
because every line's text can be attributed, at worst with label ``None``):

=====================  ===============================================================
reason code            what happens
=====================  ===============================================================
``unterminated_span``  ``[@`` with nothing like a closer before the next ``[@`` or EOF
                       (an inner ``*]`` as in ``['m.*] in herb.`` is text): the ``[@``
                       is removed, its text is kept with label ``None``.
``missing_close``      the span text ends with ``#Label``, ``#Label*`` or ``#Label]``:
                       that fragment is removed, the text kept with label ``None``.
``empty_label``        the span's last ``*]`` is ``#*]``: markup removed, the span's
                       text gets label ``None``; text after it lies outside the span.
``bad_label``          the span's last ``*]`` follows ``#`` and label characters that
                       are not a label (``#1a*]``, ``# Key*]``), or a bare ``*]`` ends
                       the segment (``@Page-header*]``, ``Taxonomy*]``): ``#...*]`` or,
                       with no ``#``, just ``*]`` removed; label ``None``.
``nested_span``        an unterminated ``[@`` followed by a span holding two or more
                       closers (``[@A [@B#X*] C#Y*]``): both openers, the inner
                       (second-to-last) and the outer (last) closer are removed; all of
                       the text gets label ``None``.
``stray_close``        a closer outside any span (before the first ``[@``, or ``*]``
                       ending the text after a span): text kept with label ``None``; a
                       valid stray ``#Label*]`` is removed from the text.
``empty_file``         no non-empty line (line 1, nothing dropped).
=====================  ===============================================================

A problem's ``line_no`` is where the fault shows: the opener of an unterminated span,
the bad closer or fragment, the inner ``[@`` of a nested span, the stray closer.

Scanning is linear in the input: openers are found with ``str.find``; inside each
opener-to-opener segment closers are examined backwards with ``str.rfind`` over disjoint
ranges, and regular expressions only check the few characters between a ``#`` and
its ``*]``.
"""
import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

OPEN = "[@"
CLOSE = "*]"
LABEL_PATTERN = r"[A-Za-z][A-Za-z0-9_ -]*"
# Separator of a label set in a closer and in the `label` column of multi-label lines.
LABEL_SEPARATOR = "|"
LABEL_SET_PATTERN = rf"{LABEL_PATTERN}(?:\|{LABEL_PATTERN})*"
_LABEL_RE = re.compile(LABEL_PATTERN)
_LABEL_SET_RE = re.compile(LABEL_SET_PATTERN)
_LABEL_CHARS_RE = re.compile(r"[A-Za-z0-9_ |-]+")
# '[' or '*', backslashes, then '@' or ']' (paired): written with one more backslash.
_TO_ESCAPE_RE = re.compile(r"\[\\*@|\*\\*\]")
_ESCAPED_RE = re.compile(r"\[\\+@|\*\\+\]")
_BOM = b"\xef\xbb\xbf"
_REPLACEMENT = "\ufffd"
# Labels longer than this are not taken as the tail of a span missing its '*]'.
_MAX_FRAGMENT_LABEL = 64
_UNSET = object()


@dataclass(frozen=True)
class Line:
    """One non-empty physical line of a document.

    Attributes:
        line_no: 1-based physical line number in the file.
        text: the line with markup removed and trailing whitespace stripped; leading
            whitespace kept. ``""`` for a line that holds only markup.
        label: raw label of the enclosing span; ``None`` outside any span.
        blank_before: the previous physical line was empty or whitespace-only (True
            for the first line of the file).
        indent: leading whitespace of ``text``; a tab counts 4, a form feed or vertical
            tab 0, any other whitespace character 1.
    """

    line_no: int
    text: str
    label: Optional[str]
    blank_before: bool
    indent: int


@dataclass(frozen=True)
class Problem:
    """An irregularity found while parsing, with the number of lines it cost.

    Attributes:
        path: the file.
        line_no: 1-based line where the problem starts.
        reason: ``"<code>: <message>"``; the code is stable, see the module docstring.
        lines_dropped: non-empty lines that produced no :class:`Line` because of it.
    """

    path: str
    line_no: int
    reason: str
    lines_dropped: int

    @property
    def code(self) -> str:
        """The stable reason code, e.g. ``"unterminated_span"``."""
        return self.reason.split(":", 1)[0]

    def __str__(self) -> str:
        return f"{self.path}: line {self.line_no}: {self.reason}"


class AnnotationError(ValueError):
    """Malformed annotation in strict mode; the message names the path and line."""

    def __init__(self, message: str, problem: Optional[Problem] = None):
        super().__init__(message)
        self.problem = problem


def _normalise_newlines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def decode_bytes(data: bytes) -> Tuple[str, int]:
    """Decodes a file's bytes as UTF-8, never failing.

    Strips a leading UTF-8 byte-order mark, replaces undecodable byte sequences with
    U+FFFD and normalises CRLF and lone CR to LF.

    Args:
        data: raw file contents.

    Returns:
        ``(text, n)`` where ``n`` counts the U+FFFD characters introduced by decoding
        (a U+FFFD already present in the file is not counted).
    """
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    text = data.decode("utf-8", errors="replace")
    # EF BF BD always starts a fresh sequence, so each occurrence is one genuine U+FFFD.
    introduced = text.count(_REPLACEMENT) - data.count(_REPLACEMENT.encode("utf-8"))
    return _normalise_newlines(text), introduced


def is_label(label) -> bool:
    """True if `label` can close a YEDDA span (matches ``LABEL_PATTERN``)."""
    return isinstance(label, str) and _LABEL_RE.fullmatch(label) is not None


def label_set(label) -> Tuple[str, ...]:
    """The labels of a label value: None and ``""`` are the empty set, a string is split
    on ``|``, a list, tuple or set gives its items (a set in sorted order).

    >>> label_set("joy|anger"), label_set(""), label_set(None), label_set(["fear"])
    (('joy', 'anger'), (), (), ('fear',))
    """
    if label is None or label == "":
        return ()
    if isinstance(label, str):
        return tuple(label.split(LABEL_SEPARATOR))
    if isinstance(label, (set, frozenset)):
        return tuple(sorted(label))
    return tuple(label)


def escape_text(text: str) -> str:
    r"""`text` with every ``[@`` and ``*]`` (and their escaped forms) escaped.

    >>> print(escape_text(r"a [@ b *] c [\@"))
    a [\@ b *\] c [\\@
    >>> print(unescape_text(r"a [\@ b *\] c [\\@ d \ e"))
    a [@ b *] c [\@ d \ e
    """
    if "@" not in text and "]" not in text:
        return text
    return _TO_ESCAPE_RE.sub(lambda m: m.group()[0] + "\\" + m.group()[1:], text)


def unescape_text(text: str) -> str:
    """The inverse of :func:`escape_text`: drops one backslash from each escape."""
    if "\\" not in text:
        return text
    return _ESCAPED_RE.sub(lambda m: m.group()[0] + m.group()[2:], text)


def encode_document(text: str) -> bytes:
    """UTF-8 bytes that :func:`decode_bytes` reads back to `text`.

    A text starting with U+FEFF gets a byte-order mark first, since readers drop one.
    """
    data = text.encode("utf-8")
    return _BOM + data if data.startswith(_BOM) else data


def count_nonempty_lines(text: str) -> int:
    """Counts physical lines (split on LF after CR normalisation) with non-space text."""
    return sum(1 for raw in _normalise_newlines(text).split("\n") if raw and not raw.isspace())


def _indent(text: str) -> int:
    n = 0
    for ch in text:
        if ch == " ":
            n += 1
        elif ch == "\t":
            n += 4
        elif ch in "\f\v":
            continue
        elif ch.isspace():
            n += 1
        else:
            break
    return n


def _nonspace(s: str) -> int:
    return len("".join(s.split()))


class _Scan:
    """Single pass over a normalised text: regions plus problems."""

    def __init__(self, text: str, path: str):
        self.text = text
        self.path = path
        self.regions: List[Tuple[int, int, Optional[str], bool]] = []
        self.problems: List[Problem] = []
        self._newlines: Optional[List[int]] = None

    # -- helpers -------------------------------------------------------------------
    def line_of(self, pos: int) -> int:
        if self._newlines is None:
            nl, i = [], self.text.find("\n")
            while i >= 0:
                nl.append(i)
                i = self.text.find("\n", i + 1)
            self._newlines = nl
        return bisect_right(self._newlines, pos - 1) + 1

    def add(self, start: int, end: int, label: Optional[str], is_text: bool) -> None:
        if end > start:
            self.regions.append((start, end, label, is_text))

    def problem(self, pos: int, code: str, message: str) -> None:
        self.problems.append(Problem(self.path, self.line_of(pos), f"{code}: {message}", 0))

    def snippet(self, start: int, end: int, width: int = 30) -> str:
        s = self.text[max(start, end - width):end]
        return ("..." if end - start > width else "") + s.replace("\n", "\\n")

    def valid_closers(self, start: int, end: int, limit: int) -> List[Tuple[int, int]]:
        """Up to `limit` valid closers in [start, end), last first, as ('#' pos, '*]' pos)."""
        found = []
        text = self.text
        p = text.rfind(CLOSE, start, end)
        while p >= 0 and len(found) < limit:
            q = text.rfind(CLOSE, start, p)
            # A label holds no '*' or ']', so its '#' lies after the previous '*]':
            # the searched ranges are disjoint and the whole loop is linear.
            h = text.rfind("#", q + 2 if q >= 0 else start, p)
            if h >= 0 and _LABEL_SET_RE.fullmatch(text, h + 1, p):
                found.append((h, p))
            p = q
        return found

    # -- the scan ------------------------------------------------------------------
    def run(self) -> None:
        text = self.text
        n = len(text)
        opens = []
        i = text.find(OPEN)
        while i >= 0:
            opens.append(i)
            i = text.find(OPEN, i + 2)
        first = opens[0] if opens else n
        self.outside(0, first, leading=True)
        k = 0
        while k < len(opens):
            o = opens[k]
            s = o + 2
            e = opens[k + 1] if k + 1 < len(opens) else n
            closers = self.valid_closers(s, e, 1)
            if closers:
                h, p = closers[0]
                label = text[h + 1:p]
                self.add(o, s, label, False)
                self.add(s, h, label, True)
                self.add(h, p + 2, label, False)
                self.outside(p + 2, e, leading=False)
                k += 1
            else:
                k += self.unclosed(k, opens, o, s, e)

    def outside(self, start: int, end: int, leading: bool) -> None:
        """Text outside any span; reports closers that belong to no opener."""
        if start >= end:
            return
        text = self.text
        if leading:
            closers = self.valid_closers(start, end, 1)
            if closers:
                h, p = closers[0]
                self.problem(h, "stray_close",
                             f"'{text[h:p + 2]}' closes a span that was never opened with '[@'")
                self.add(start, h, None, True)
                self.add(h, p + 2, None, False)
                self.add(p + 2, end, None, True)
                return
        tail = text[start:end].rstrip()
        if tail.endswith(CLOSE):
            p = start + len(tail) - 2
            self.problem(p, "stray_close",
                         f"'{self.snippet(start, p + 2)}' ends with '*]' outside any span")
        self.add(start, end, None, True)

    def unclosed(self, k: int, opens: Sequence[int], o: int, s: int, e: int) -> int:
        """Recovers a segment [s, e) opened at o that has no valid closer.

        Returns:
            The number of openers consumed (2 for a nested span, else 1).
        """
        text = self.text
        seg = text[s:e]
        t_end = s + len(seg.rstrip())
        open_line = self.line_of(o)
        where = (f"before the next '[@' at line {self.line_of(e)}" if e < len(text)
                 else "before end of file")
        p = text.rfind(CLOSE, s, e)
        if p >= 0:
            q = text.rfind(CLOSE, s, p)
            h = text.rfind("#", max(q + 2 if q >= 0 else s, p - _MAX_FRAGMENT_LABEL - 1), p)
            # '#' plus label characters before '*]' is a closer with a bad label wherever
            # it is; a bare '*]' counts as a closer only at the very end of the segment.
            hashed = h >= 0 and (h == p - 1 or _LABEL_CHARS_RE.fullmatch(text, h + 1, p))
            if hashed or p + 2 == t_end:
                if h == p - 1:
                    self.problem(p, "empty_label",
                                 f"span opened at line {open_line} ends with '#*]' (no label)")
                elif hashed:
                    self.problem(p, "bad_label",
                                 f"span opened at line {open_line} ends with "
                                 f"'{text[h:p + 2]}'; a label must match {LABEL_PATTERN} "
                                 f"(several: joined by '{LABEL_SEPARATOR}')")
                else:
                    self.problem(p, "bad_label",
                                 f"span opened at line {open_line} ends with "
                                 f"'{self.snippet(s, p + 2)}', which is not '#Label*]'")
                cut = h if hashed else p
                self.add(o, s, None, False)
                self.add(s, cut, None, True)
                self.add(cut, p + 2, None, False)
                self.outside(p + 2, e, leading=False)
                return 1
        u = t_end - 1 if t_end > s and text[t_end - 1] in "*]" else t_end
        h = text.rfind("#", max(s, u - _MAX_FRAGMENT_LABEL - 1), u)
        if h >= 0 and _LABEL_SET_RE.fullmatch(text, h + 1, u):
            self.problem(h, "missing_close",
                         f"span opened at line {open_line} ends with '{text[h:t_end]}' "
                         f"but has no closing '*]' {where}")
            self.add(o, s, None, False)
            self.add(s, h, None, True)
            self.add(h, t_end, None, False)
            self.add(t_end, e, None, True)
            return 1
        if e < len(text):
            e2 = opens[k + 2] if k + 2 < len(opens) else len(text)
            inner = self.valid_closers(e + 2, e2, 2)
            if len(inner) == 2:
                (h2, p2), (h1, p1) = inner
                self.problem(e, "nested_span",
                             f"'[@' at line {self.line_of(e)} opens a span inside the span "
                             f"opened at line {open_line}; text kept without labels")
                self.add(o, s, None, False)
                self.add(s, e, None, True)
                self.add(e, e + 2, None, False)
                self.add(e + 2, h1, None, True)
                self.add(h1, p1 + 2, None, False)
                self.add(p1 + 2, h2, None, True)
                self.add(h2, p2 + 2, None, False)
                self.outside(p2 + 2, e2, leading=False)
                return 2
        self.problem(o, "unterminated_span",
                     f"'[@' opened at line {open_line} has no closing '*]' {where}")
        self.add(o, s, None, False)
        self.add(s, e, None, True)
        return 1


def _build_lines(text: str, regions: Sequence[Tuple[int, int, Optional[str], bool]],
                 unescape: bool = True) -> List[Line]:
    # Escapes are undone per text region, so markup removed between two pieces never
    # makes an escape that the file did not hold.
    clean = unescape_text if unescape else str
    lines = []
    r = 0
    n_regions = len(regions)
    pos = 0
    blank = True
    for line_no, raw in enumerate(text.split("\n"), start=1):
        start, end = pos, pos + len(raw)
        pos = end + 1
        if not raw or raw.isspace():
            blank = True
            continue
        while regions[r][1] <= start:
            r += 1
        r_start, r_end, label, is_text = regions[r]
        if is_text and r_start <= start and r_end >= end:
            line_text = clean(raw).rstrip()
        else:
            parts, counts, first = [], {}, _UNSET
            j = r
            while j < n_regions and regions[j][0] < end:
                r_start, r_end, lab, is_text = regions[j]
                if first is _UNSET:
                    first = lab
                if is_text:
                    piece = clean(text[max(r_start, start):min(r_end, end)])
                    parts.append(piece)
                    c = _nonspace(piece)
                    if c:
                        counts[lab] = counts.get(lab, 0) + c
                j += 1
            line_text = "".join(parts).rstrip()
            # max() keeps the first of equal counts: ties go to the earliest region.
            label = max(counts, key=counts.get) if counts else first
        lines.append(Line(line_no, line_text, label, blank, _indent(line_text)))
        blank = False
    return lines


def _finish(lines: List[Line], problems: List[Problem], path: str, strict: bool
            ) -> Tuple[List[Line], List[Problem]]:
    if not lines:
        problems.append(Problem(path, 1, "empty_file: no non-empty line", 0))
    problems.sort(key=lambda p: p.line_no)
    if strict and problems:
        first = problems[0]
        raise AnnotationError(str(first), first)
    for p in problems:
        logger.debug("%s", p)
    return lines, problems


def parse_yedda(text: str, path: str = "<string>", strict: bool = False
                ) -> Tuple[List[Line], List[Problem]]:
    """Parses YEDDA-annotated text into labelled lines.

    Args:
        text: the document (CR and CRLF are treated as LF).
        path: name used in problems and errors.
        strict: raise on the first problem instead of recovering.

    Returns:
        ``(lines, problems)``: one :class:`Line` per non-empty physical line, in order,
        and the problems sorted by line; see the module docstring for the recovery
        applied to each problem code.

    Raises:
        AnnotationError: in strict mode, for the first problem, naming path and line.
    """
    text = _normalise_newlines(text)
    scan = _Scan(text, path)
    scan.run()
    lines = _build_lines(text, scan.regions) if text else []
    return _finish(lines, scan.problems, path, strict)


def parse_plain(text: str, path: str = "<string>") -> List[Line]:
    """Splits unannotated text into lines with label ``None``; markup is not interpreted.

    Args:
        text: the document (CR and CRLF are treated as LF).
        path: unused; kept for symmetry with :func:`parse_yedda`.
    """
    text = _normalise_newlines(text)
    return _build_lines(text, [(0, len(text), None, True)], unescape=False) if text else []


def format_yedda(lines: Iterable[Tuple[str, object]]) -> str:
    """Writes ``(text, label)`` lines as YEDDA, one span per run of equal labels.

    ``parse_yedda(format_yedda(x))`` gives back every entry whose text is not blank, with
    its text (trailing whitespace stripped) and label, and no problems, whatever the
    text holds: ``[@`` and ``*]`` in it are escaped (:func:`escape_text`). Blank entries
    are written as empty lines: inside the span when both neighbouring entries share its
    label, between spans otherwise. Label ``None`` or an empty set (``""``, ``()``)
    writes the text outside any span; a label set (``"joy|anger"`` or a list of labels)
    closes its span with the labels joined by ``|``. Write the result with
    :func:`encode_document`.

    >>> print(format_yedda([("So glad", "joy|gratitude"), ("Noted", ""), ("Why?", ["curiosity"])]),
    ...       end="")
    [@So glad#joy|gratitude*]
    Noted
    [@Why?#curiosity*]

    Args:
        lines: ``(text, label)`` pairs; text holds no line break.

    Returns:
        The document, ending with a newline unless empty.

    Raises:
        ValueError: a text with a line break, or a label not matching
            ``[A-Za-z][A-Za-z0-9_ -]*``.
    """
    entries = []
    for text, label in lines:
        if "\n" in text or "\r" in text:
            raise ValueError(f"format_yedda: text {text!r} contains a line break")
        parts = label_set(label)
        if not all(is_label(part) for part in parts):
            raise ValueError(f"format_yedda: label {label!r} must match {LABEL_PATTERN} "
                             f"(a set: such labels joined by '{LABEL_SEPARATOR}')")
        entries.append((text, LABEL_SEPARATOR.join(parts) if parts else None))
    filled = [i for i, (text, _) in enumerate(entries) if text.strip()]
    out: List[str] = []
    prev = 0
    g = 0
    while g < len(filled):
        label = entries[filled[g]][1]
        h = g
        while h + 1 < len(filled) and entries[filled[h + 1]][1] == label:
            h += 1
        first, last = filled[g], filled[h]
        out.extend("" for _ in range(prev, first))
        block = [escape_text(entries[i][0]) if entries[i][0].strip() else ""
                 for i in range(first, last + 1)]
        if label is not None:
            block[0] = OPEN + block[0]
            block[-1] = block[-1] + "#" + label + CLOSE
        out.extend(block)
        prev = last + 1
        g = h + 1
    out.extend("" for _ in range(prev, len(entries)))
    return "\n".join(out) + "\n" if out else ""


# What text with no label (outside spans, or a set left empty by the mapping) becomes in
# multi-label mode: the default label, or the empty set "".
UNLABELLED = ("default_label", "none")


class LabelMap:
    """Maps raw YEDDA labels onto the training label set.

    ``explicit`` renames first; the result is kept when ``keep`` is ``None`` or lists
    it, otherwise it becomes ``default``. Text outside any span (``None``) maps to
    ``default``. The constructor arguments are the JSON form.

    With ``multi_label`` a raw label is a ``|``-joined set, mapped label by label:
    ``explicit`` may map one label to a set, labels not in ``keep`` are dropped, repeats
    are dropped, and a set left empty (or text outside spans) becomes ``default`` when
    ``unlabelled`` is ``"default_label"`` and the empty set ``""`` when it is ``"none"``.

    >>> m = LabelMap(keep=["Nomenclature", "Description"], explicit={"Diagnosis": "Description"})
    >>> [m.map(x) for x in ("Nomenclature", "Diagnosis", "Key", None)]
    ['Nomenclature', 'Description', 'Misc-exposition', 'Misc-exposition']
    >>> LabelMap.from_json(m.to_json()) == m
    True
    >>> sets = LabelMap(keep=["joy", "anger"], default="neutral", multi_label=True,
    ...                 unlabelled="none")
    >>> [sets.map(x) for x in ("joy|anger", "joy|pride", "pride", None)]
    ['joy|anger', 'joy', '', '']
    """

    def __init__(self, keep: Optional[Sequence[str]] = None, default: str = "Misc-exposition",
                 explicit: Optional[Dict[str, str]] = None, multi_label: bool = False,
                 unlabelled: str = "default_label"):
        if keep is not None:
            if isinstance(keep, str) or not all(isinstance(k, str) for k in keep):
                raise TypeError(f"LabelMap: keep must be a list of label strings or None, "
                                f"got {keep!r}")
            keep = list(keep)
        if not isinstance(default, str) or not default:
            raise TypeError(f"LabelMap: default must be a non-empty string, got {default!r}")
        if explicit is not None:
            if not isinstance(explicit, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in explicit.items()):
                raise TypeError(f"LabelMap: explicit must be a dict of str to str or None, "
                                f"got {explicit!r}")
            explicit = dict(explicit)
        if not isinstance(multi_label, bool):
            raise TypeError(f"LabelMap: multi_label must be true or false, got {multi_label!r}")
        if unlabelled not in UNLABELLED:
            raise TypeError(f"LabelMap: unlabelled must be one of {list(UNLABELLED)}, "
                            f"got {unlabelled!r}")
        if unlabelled == "none" and not multi_label:
            raise TypeError("LabelMap: unlabelled 'none' (the empty label set) needs "
                            "multi_label=True; a single-label line has exactly one label")
        self.keep = keep
        self.default = default
        self.explicit = explicit
        self.multi_label = multi_label
        self.unlabelled = unlabelled
        self._keep_set = None if keep is None else frozenset(keep)

    @property
    def labels(self) -> Optional[Tuple[str, ...]]:
        """The possible outputs in order (``keep`` then ``default``); None if keep is None."""
        if self.keep is None:
            return None
        out = list(dict.fromkeys(self.keep))
        if self.default not in out:
            out.append(self.default)
        return tuple(out)

    def map(self, raw: Optional[str]) -> str:
        """Maps one raw label (surrounding whitespace ignored); None gives the default
        (in multi-label mode: what ``unlabelled`` says)."""
        if self.multi_label:
            return self._map_set(raw)
        if raw is None:
            return self.default
        raw = raw.strip()
        if self.explicit is not None:
            raw = self.explicit.get(raw, raw)
        if self._keep_set is None or raw in self._keep_set:
            return raw
        return self.default

    def _map_set(self, raw: Optional[str]) -> str:
        out: List[str] = []
        for part in label_set(raw):
            part = part.strip()
            if self.explicit is not None:
                part = self.explicit.get(part, part)
            for label in label_set(part):
                if (self._keep_set is None or label in self._keep_set) and label not in out:
                    out.append(label)
        if out:
            return LABEL_SEPARATOR.join(out)
        return self.default if self.unlabelled == "default_label" else ""

    def to_json(self) -> dict:
        """The constructor arguments as a JSON-able dict."""
        return {"keep": None if self.keep is None else list(self.keep),
                "default": self.default,
                "explicit": None if self.explicit is None else dict(self.explicit),
                "multi_label": self.multi_label, "unlabelled": self.unlabelled}

    @classmethod
    def from_json(cls, d: dict) -> "LabelMap":
        """Rebuilds a map from :meth:`to_json` output."""
        return cls(**d)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelMap) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((None if self.keep is None else tuple(self.keep), self.default,
                     None if self.explicit is None else tuple(sorted(self.explicit.items())),
                     self.multi_label, self.unlabelled))

    def __repr__(self) -> str:
        return (f"LabelMap(keep={self.keep!r}, default={self.default!r}, "
                f"explicit={self.explicit!r}, multi_label={self.multi_label!r}, "
                f"unlabelled={self.unlabelled!r})")
