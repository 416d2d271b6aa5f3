"""Tests for the YEDDA reader/writer: grammar, recovery, accounting, complexity."""
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focalseq.text.yedda import (AnnotationError, LabelMap, Line, Problem, count_nonempty_lines,
                                 decode_bytes, encode_document, format_yedda, parse_plain,
                                 parse_yedda)


def _pairs(lines):
    return [(line.text, line.label) for line in lines]


def _accounted(text, lines, problems):
    return count_nonempty_lines(text) == len(lines) + sum(p.lines_dropped for p in problems)


# -- well-formed input ---------------------------------------------------------------

def test_multiline_span_and_text_outside():
    text = ("Header outside\n"
            "\n"
            "[@Agaricus campestris L.\n"
            "    Sp. pl. 2: 1173. 1753.#Nomenclature*]\n"
            "\n"
            "\n"
            "[@Pileus 5-10 cm,\n"
            "\tconvex.#Description*]\n"
            "trailing outside   \n")
    lines, problems = parse_yedda(text, "a.ann")
    assert problems == []
    assert lines == [
        Line(1, "Header outside", None, True, 0),
        Line(3, "Agaricus campestris L.", "Nomenclature", True, 0),
        Line(4, "    Sp. pl. 2: 1173. 1753.", "Nomenclature", False, 4),
        Line(7, "Pileus 5-10 cm,", "Description", True, 0),
        Line(8, "\tconvex.", "Description", False, 4),
        Line(9, "trailing outside", None, False, 0),
    ]


def test_markup_characters_inside_span_text():
    text = "[@a # b [c] *d* ['m.*] #X*] e [x]*#Nomenclature*]\n[@next#Key*]"
    lines, problems = parse_yedda(text)
    assert problems == []
    assert _pairs(lines) == [("a # b [c] *d* ['m.*] #X*] e [x]*", "Nomenclature"),
                             ("next", "Key")]


def test_span_ends_at_last_closer_before_next_opener():
    text = "[@one#A*]\nmiddle#B*]\nafter\n[@two#C*]"
    lines, problems = parse_yedda(text)
    assert problems == []
    assert _pairs(lines) == [("one#A*]", "B"), ("middle", "B"), ("after", None), ("two", "C")]


def test_label_with_spaces_and_underscore_is_kept_verbatim():
    lines, problems = parse_yedda("[@x#Page header_2*]")
    assert problems == [] and lines[0].label == "Page header_2"


def test_mid_line_span_takes_majority_label_and_ties_go_first():
    text = ("intro [@a much longer span text\n"
            "end#X*] short tail\n"
            "abc [@def#Y*]\n")
    lines, problems = parse_yedda(text)
    assert problems == []
    assert _pairs(lines) == [("intro a much longer span text", "X"),
                             ("end short tail", None),
                             ("abc def", None)]  # 3 vs 3 non-space chars: first wins


def test_markup_only_lines_are_kept_with_empty_text():
    text = "[@\nbody\n#Table*]\n[@#Page-header*]\nnext"
    lines, problems = parse_yedda(text)
    assert problems == []
    assert _pairs(lines) == [("", "Table"), ("body", "Table"), ("", "Table"),
                             ("", "Page-header"), ("next", None)]
    assert _accounted(text, lines, problems)


def test_crlf_and_lone_cr_are_line_breaks():
    lines, problems = parse_yedda("[@a\r\nb#X*]\r\n\r\nc\rd")
    assert problems == []
    assert [(l.line_no, l.text, l.label, l.blank_before) for l in lines] == [
        (1, "a", "X", True), (2, "b", "X", False), (4, "c", None, True), (5, "d", None, False)]
    assert count_nonempty_lines("a\r\nb\rc\n\r\n") == 3


def test_form_feed_is_kept_but_not_indentation():
    (line,), _ = parse_yedda("[@\fMYCOTAXON 117#Page-header*]")
    assert line.text == "\fMYCOTAXON 117" and line.indent == 0


def test_parse_plain_does_not_interpret_markup():
    lines = parse_plain("  [@a#X*]\n\n b  \n")
    assert lines == [Line(1, "  [@a#X*]", None, True, 2), Line(3, " b", None, True, 1)]
    assert parse_plain("") == []


# -- decoding ------------------------------------------------------------------------

def test_decode_strips_bom_and_normalises_newlines():
    text, bad = decode_bytes(b"\xef\xbb\xbf[@a\r\nb#X*]\r")
    assert (text, bad) == ("[@a\nb#X*]\n", 0)


def test_decode_counts_only_introduced_replacement_characters():
    data = "ok \ufffd µm ".encode("utf-8") + b"\xff\xfe" + b" x \xe2\x82" + b"\n"
    text, bad = decode_bytes(data)
    assert bad == 3  # \xff, \xfe and the truncated 3-byte sequence; the genuine U+FFFD not
    assert text.startswith("ok \ufffd µm ")


def test_decode_keeps_a_bom_that_is_not_leading():
    text, _ = decode_bytes(b"a\xef\xbb\xbfb")
    assert text == "a\ufeffb"


# -- malformed input: problems, recovery, strict mode ---------------------------------

BAD = [
    # (name, text, code, line_no, expected (text, label) pairs)
    ("unterminated_before_next", "[@a\nb\n\n[@c#X*]", "unterminated_span", 1,
     [("a", None), ("b", None), ("c", "X")]),
    ("unterminated_at_eof", "x\n[@a\nb [c] *", "unterminated_span", 2,
     [("x", None), ("a", None), ("b [c] *", None)]),
    ("missing_close", "[@a\nb#Description\n\n[@c#X*]", "missing_close", 2,
     [("a", None), ("b", None), ("c", "X")]),
    ("missing_star", "[@a#Description]\n[@c#X*]", "missing_close", 1,
     [("a", None), ("c", "X")]),
    ("empty_label", "[@a\nb#*]\nc", "empty_label", 2, [("a", None), ("b", None), ("c", None)]),
    ("bad_label", "[@a#1abc*]", "bad_label", 1, [("a", None)]),
    ("no_hash", "[@272 PERSOONIA@Page-header*]\n[@c#X*]", "bad_label", 1,
     [("272 PERSOONIA@Page-header", None), ("c", "X")]),
    ("nested", "[@outer\n[@inner#X*]\nrest#Y*]\nafter", "nested_span", 2,
     [("outer", None), ("inner", None), ("rest", None), ("after", None)]),
    ("stray_close", "a#X*]\n[@b#Y*]", "stray_close", 1, [("a", None), ("b", "Y")]),
    ("stray_close_after_span", "[@a#X*]\nb#*]", "stray_close", 2, [("a", "X"), ("b#*]", None)]),
    ("empty_file", "", "empty_file", 1, []),
    ("blank_file", " \n\t\n", "empty_file", 1, []),
]


@pytest.mark.parametrize("name,text,code,line_no,expected", BAD, ids=[b[0] for b in BAD])
def test_malformed_input_is_reported_and_recovered(name, text, code, line_no, expected):
    lines, problems = parse_yedda(text, "doc.ann")
    assert [(p.code, p.line_no, p.lines_dropped, p.path) for p in problems] == [
        (code, line_no, 0, "doc.ann")]
    assert problems[0].reason.startswith(code + ": ")
    assert _pairs(lines) == expected
    assert _accounted(text, lines, problems)


@pytest.mark.parametrize("name,text,code,line_no,expected", BAD, ids=[b[0] for b in BAD])
def test_strict_mode_raises_first_problem_with_path_and_line(name, text, code, line_no,
                                                             expected):
    with pytest.raises(AnnotationError) as info:
        parse_yedda(text, "vol/doc.ann", strict=True)
    message = str(info.value)
    assert "vol/doc.ann" in message and f"line {line_no}" in message and code in message
    assert isinstance(info.value, ValueError)
    assert info.value.problem.code == code


def test_strict_mode_reports_the_earliest_problem():
    text = "[@a#X*]\n[@b\n[@c#*]\n"
    _, problems = parse_yedda(text)
    assert [(p.code, p.line_no) for p in problems] == [("unterminated_span", 2),
                                                      ("empty_label", 3)]
    with pytest.raises(AnnotationError, match="line 2: unterminated_span"):
        parse_yedda(text, strict=True)


def test_clean_text_in_strict_mode_does_not_raise():
    lines, problems = parse_yedda("[@a#X*]\n", strict=True)
    assert len(lines) == 1 and problems == []


def test_problem_messages_name_the_opening_line():
    _, problems = parse_yedda("x\n\n[@a\nb\n[@c#X*]")
    assert problems[0].reason == ("unterminated_span: '[@' opened at line 3 has no closing "
                                  "'*]' before the next '[@' at line 5")
    assert str(problems[0]).startswith("<string>: line 3: unterminated_span")


# -- accounting invariant and robustness under fuzzing --------------------------------

_FRAGMENTS = st.sampled_from(["[@", "#", "*]", "[", "]", "*", "@", "\n", "\n\n", "\r\n", "\r",
                              " ", "\t", "\f", "a", "Bc", "Label", "X", "1", "_", "-", "é",
                              "#X*]", "#*]", "[@#", "\ufffd"])
_MARKUP_SOUP = st.lists(_FRAGMENTS, max_size=60).map("".join)


def _check_invariants(text, lines, problems):
    assert _accounted(text, lines, problems)
    assert all(p.lines_dropped >= 0 for p in problems)
    numbers = [l.line_no for l in lines]
    assert numbers == sorted(set(numbers))
    for line in lines:
        assert "\n" not in line.text and line.text == line.text.rstrip()
        assert line.indent >= 0
        assert line.label is None or line.label.strip()


@settings(max_examples=400, deadline=None)
@given(_MARKUP_SOUP)
def test_every_nonempty_line_is_accounted_for(text):
    lines, problems = parse_yedda(text, "fuzz")
    _check_invariants(text, lines, problems)
    if not any(p.code == "empty_file" for p in problems):
        assert len(lines) == count_nonempty_lines(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_unicode_never_raises_in_lenient_mode(text):
    lines, problems = parse_yedda(text)
    _check_invariants(text, lines, problems)
    assert len(parse_plain(text)) == count_nonempty_lines(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_decoded_bytes_are_always_parseable(data):
    text, bad = decode_bytes(data)
    assert bad >= 0 and "\r" not in text
    lines, problems = parse_yedda(text)
    _check_invariants(text, lines, problems)


# -- linear time ---------------------------------------------------------------------

def _best_time(text, repeats=2):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        parse_yedda(text)
        best = min(best, time.perf_counter() - start)
    return best


ADVERSARIAL = {
    "open_hash_open_hash_close": ("[@#[@#*]", ""),
    "open_label_no_close": ("[@a#", ""),
    "stray_closers": ("#X*]", ""),
    "invalid_closers_in_one_span": ("a*]", "[@"),
    "closers_without_hash": ("*]", "[@"),
    "lines_of_unterminated_spans": ("[@a#\n", ""),
    "mid_line_spans": ("a [@b#X*] c\n", ""),
}


@pytest.mark.parametrize("unit,prefix", ADVERSARIAL.values(), ids=list(ADVERSARIAL))
def test_parse_time_is_linear_on_adversarial_input(unit, prefix):
    # Complexity guard with a wide margin: 4x the input may take at most ~12x the time.
    copies = 150_000 // len(unit)
    t_small = _best_time(prefix + unit * copies)
    t_large = _best_time(prefix + unit * (4 * copies))
    assert t_large < 12 * max(t_small, 1e-3), (t_small, t_large)


# -- writer --------------------------------------------------------------------------

_LABELS = st.tuples(st.sampled_from("AbZq"), st.text("ab Z9_-", max_size=8)).map("".join)
_TEXTS = (st.text("ab Z09#[]*@-.,;:()×µ\tä", min_size=1, max_size=30)
          .map(lambda t: t.rstrip().replace("[@", "[ @")).filter(lambda t: t.strip()))
_ENTRIES = st.lists(st.tuples(_TEXTS, st.one_of(_LABELS, st.sampled_from(["A", "B"]))),
                    max_size=25)


@settings(max_examples=200, deadline=None)
@given(_ENTRIES)
def test_format_then_parse_restores_text_and_labels(entries):
    text = format_yedda(entries)
    lines, problems = parse_yedda(text)
    expected_problems = [] if entries else ["empty_file"]
    assert [p.code for p in problems] == expected_problems
    assert _pairs(lines) == entries


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.one_of(_TEXTS, st.sampled_from(["", "  "])),
                          st.one_of(st.none(), st.sampled_from(["A", "B"]))), max_size=20))
def test_round_trip_with_blank_and_unlabelled_entries(entries):
    entries = [(t, lab) for t, lab in entries if lab is not None or "*]" not in t]
    lines, problems = parse_yedda(format_yedda(entries))
    kept = [(t, lab) for t, lab in entries if t.strip()]
    assert _pairs(lines) == kept
    assert [p.code for p in problems] == ([] if kept else ["empty_file"])


def test_format_groups_runs_into_spans_and_keeps_inner_blank_lines():
    entries = [("a", "X"), ("", "X"), ("b", "X"), ("", None), ("c", "Y"), ("d", None)]
    assert format_yedda(entries) == "[@a\n\nb#X*]\n\n[@c#Y*]\nd\n"
    assert format_yedda([]) == ""


@pytest.mark.parametrize("entries,match", [
    ([("a\nb", "X")], "line break"),
    ([("a", "1bad")], "label"),
    ([("a", "joy||anger")], "label"),
    ([("a", ["joy", "1bad"])], "label"),
])
def test_format_rejects_unrepresentable_entries(entries, match):
    with pytest.raises(ValueError, match=match):
        format_yedda(entries)


# Issue 12: text holding '[@' made the writer raise halfway through a prediction output,
# and unlabelled text holding '*]' too. Markup in text is now escaped and read back.

def test_markup_in_text_is_escaped_and_read_back_exactly():
    entries = [("see [@ here", "X"), ("a*] b", None), ("#Y*] and [\\@", "X"),
               ("tail *\\] [@#Z*]", None)]
    written = format_yedda(entries)
    # Written by hand from the escape rule: one more backslash in '[' \* '@' and '*' \* ']'.
    assert written == ("[@see [\\@ here#X*]\na*\\] b\n[@#Y*\\] and [\\\\@#X*]\n"
                       "tail *\\\\] [\\@#Z*\\]\n")
    lines, problems = parse_yedda(written)
    assert problems == []
    assert _pairs(lines) == entries


def test_backslashes_that_escape_nothing_are_text():
    lines, problems = parse_yedda("[@a \\ b [\\x @\\ *\\#X*]\n")
    assert problems == [] and _pairs(lines) == [("a \\ b [\\x @\\ *\\", "X")]


_ANY_TEXT = st.one_of(
    # Text read from a file (or a Spark string column) never holds lone surrogates.
    st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
            max_size=30),
    st.lists(st.sampled_from(["[@", "*]", "[", "@", "*", "]", "\\", "#", "#A*]", "[\\@",
                              "*\\]", "x", " ", "\t", "\ufeff", "\x0c"]),
             max_size=12).map("".join))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ANY_TEXT, st.one_of(st.none(), _LABELS)), max_size=20))
def test_any_text_round_trips_through_the_file_bytes(entries):
    data = encode_document(format_yedda(entries))
    text, replaced = decode_bytes(data)
    lines, problems = parse_yedda(text)
    kept = [(t.rstrip(), lab) for t, lab in entries if t.strip()]
    assert replaced == 0
    assert [p.code for p in problems] == ([] if kept else ["empty_file"])
    assert _pairs(lines) == kept


# -- labels --------------------------------------------------------------------------

def test_label_map_keep_default_and_explicit():
    m = LabelMap(keep=["Nomenclature", "Description"], default="Misc-exposition",
                 explicit={"Diagnosis": "Description", "Nomenclature": "Misc-exposition"})
    assert m.map("Description") == "Description"
    assert m.map("Diagnosis") == "Description"
    assert m.map("Nomenclature") == "Misc-exposition"  # explicit applies before keep
    assert m.map("Page-header") == "Misc-exposition"
    assert m.map(None) == "Misc-exposition"
    assert m.map(" Description ") == "Description"
    assert m.labels == ("Nomenclature", "Description", "Misc-exposition")


def test_label_map_keep_none_keeps_everything():
    m = LabelMap()
    assert m.map("Key") == "Key" and m.map(None) == "Misc-exposition" and m.labels is None
    assert LabelMap(explicit={"m": "Misc"}).map("m") == "Misc"


def test_label_map_json_round_trip():
    m = LabelMap(keep=["Nomenclature"], default="Other", explicit={"Diagnosis": "Nomenclature"})
    d = json.loads(json.dumps(m.to_json()))
    assert d == {"keep": ["Nomenclature"], "default": "Other",
                 "explicit": {"Diagnosis": "Nomenclature"}, "multi_label": False,
                 "unlabelled": "default_label"}
    back = LabelMap.from_json(d)
    assert back == m and LabelMap(**d) == m and hash(back) == hash(m)
    assert LabelMap.from_json(LabelMap().to_json()) == LabelMap()


@pytest.mark.parametrize("kwargs", [{"keep": "Nomenclature"}, {"keep": [1]}, {"default": ""},
                                    {"explicit": {"a": 1}}, {"explicit": ["a"]}])
def test_label_map_rejects_bad_arguments(kwargs):
    with pytest.raises(TypeError):
        LabelMap(**kwargs)


def test_problem_code_property():
    p = Problem("f", 3, "bad_label: x", 0)
    assert p.code == "bad_label" and str(p) == "f: line 3: bad_label: x"


# -- label sets (multi-label) ------------------------------------------------------------------

def test_a_closer_may_carry_a_label_set():
    lines, problems = parse_yedda("[@So glad#joy|gratitude*]\nplain\n[@two\nlines#fear*]\n")
    assert problems == []
    assert [(x.line_no, x.text, x.label) for x in lines] == [
        (1, "So glad", "joy|gratitude"), (2, "plain", None), (3, "two", "fear"),
        (4, "lines", "fear")]


@pytest.mark.parametrize("closer", ["#joy|*]", "#|joy*]", "#joy||anger*]", "#joy|1x*]",
                                    "#joy| *]"])
def test_a_set_with_an_empty_or_bad_part_is_a_bad_label(closer):
    lines, problems = parse_yedda(f"first\n[@text{closer}\n", path="f.ann")
    assert [(p.path, p.line_no, p.code) for p in problems] == [("f.ann", 2, "bad_label")]
    assert [(x.text, x.label) for x in lines] == [("first", None), ("text", None)]


def test_label_map_of_sets():
    m = LabelMap(keep=["joy", "anger", "neutral"], default="neutral",
                 explicit={"happy": "joy", "mixed": "joy|anger"}, multi_label=True)
    assert [m.map(x) for x in ("joy|anger", "happy|joy", "mixed|fear", "fear", None)] == [
        "joy|anger", "joy", "joy|anger", "neutral", "neutral"]
    none = LabelMap(keep=["joy"], default="neutral", multi_label=True, unlabelled="none")
    assert [none.map(x) for x in ("joy|fear", "fear", None)] == ["joy", "", ""]
    assert LabelMap.from_json(json.loads(json.dumps(none.to_json()))) == none
    with pytest.raises(TypeError, match="needs multi_label=True"):
        LabelMap(unlabelled="none")
    with pytest.raises(TypeError, match=r"one of \['default_label', 'none'\]"):
        LabelMap(multi_label=True, unlabelled="empty")


def test_label_sets_round_trip_through_format_and_parse():
    entries = [("a", "joy|anger"), ("b", ""), ("c", ("fear",)), ("", None),
               ("d", ["joy", "anger"]), ("e", "joy|anger"), ("f", None)]
    text = format_yedda(entries)
    assert text == "[@a#joy|anger*]\nb\n[@c#fear*]\n\n[@d\ne#joy|anger*]\nf\n"
    lines, problems = parse_yedda(text)
    m = LabelMap(default="neutral", multi_label=True, unlabelled="none")
    assert problems == []
    assert [(x.text, set(filter(None, m.map(x.label).split("|")))) for x in lines] == [
        ("a", {"joy", "anger"}), ("b", set()), ("c", {"fear"}), ("d", {"joy", "anger"}),
        ("e", {"joy", "anger"}), ("f", set())]
