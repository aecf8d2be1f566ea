"""The PubMed query reader the keyword prior's gates come from (screening.pubmed_query and
screening.query_gates): syntax, precedence, field tags, matching, and every refusal."""

from __future__ import annotations

import pytest

from screening.features import Document
from screening.pubmed_query import Node, matches, parse_query
from screening.query_gates import derive_gates, query_gates
from store.errors import ValidationError
from store.settings import PROTOCOL_QUERY


def _doc(title: str = "", abstract: str = "", *, mesh: tuple[str, ...] = (),
         pts: tuple[str, ...] = (), keywords: tuple[str, ...] = ()) -> Document:
    return Document(title=title, abstract=abstract, mesh=mesh, publication_types=pts,
                    keywords=keywords)


def _hit(query: str, doc: Document) -> bool:
    return matches(parse_query(query), doc)


# ----------------------------------------------------------------------------- gates
def test_protocol_query_gives_three_named_gates() -> None:
    gates = derive_gates(PROTOCOL_QUERY)
    assert gates.query == PROTOCOL_QUERY
    assert [(g.name, g.expression, g.required) for g in gates.gates] == [
        ("Multiple Myeloma / myeloma", '"Multiple Myeloma"[mh] OR myeloma[tiab]', True),
        ("maintenance / Maintenance Chemotherapy / consolidation",
         'maintenance[tiab] OR "Maintenance Chemotherapy"[mh] OR consolidation[tiab]', True),
        ("randomized controlled trial / randomi* / phase III / phase 3",
         '"randomized controlled trial"[pt] OR randomi*[tiab] OR "phase III"[tiab] OR '
         '"phase 3"[tiab]', True),
    ]
    # each stored expression reads back as the same gate
    for gate in gates.gates:
        assert [g.name for g in derive_gates(gate.expression).gates] == [gate.name]


def test_not_group_is_a_must_not_gate() -> None:
    gates = derive_gates("myeloma[tiab] AND maintenance[tiab] NOT (review[pt] OR letter[pt])")
    assert [(g.name, g.required) for g in gates.gates] == [
        ("myeloma", True), ("maintenance", True), ("NOT review / letter", False)]
    assert gates.gates[2].expression == "NOT (review[pt] OR letter[pt])"
    trial = _doc("Myeloma maintenance trial")
    assert gates.failed(trial) == []
    assert gates.failed(_doc("Myeloma maintenance", pts=("Letter",))) == ["NOT review / letter"]
    assert gates.failed(_doc("Myeloma")) == ["maintenance"]


def test_gates_pass_exactly_when_the_query_matches() -> None:
    query = 'myeloma AND (maintenance[tiab] OR "Maintenance Chemotherapy"[mh]) NOT review[pt]'
    node, gates = parse_query(query), derive_gates(query)
    for doc in (_doc("myeloma maintenance"), _doc("myeloma", mesh=("Maintenance Chemotherapy",)),
                _doc("myeloma maintenance", pts=("Review",)), _doc("maintenance"),
                _doc("myeloma")):
        assert (gates.failed(doc) == []) == matches(node, doc)


def test_gates_are_cached_per_query_string() -> None:
    assert query_gates(PROTOCOL_QUERY) is query_gates(PROTOCOL_QUERY)
    assert query_gates("myeloma") is not query_gates("myeloma[tiab]")


# ----------------------------------------------------------------------------- precedence
def test_operators_apply_left_to_right_without_precedence() -> None:
    a_only, a_c, b_c = _doc("alpha"), _doc("alpha gamma"), _doc("beta gamma")
    # PubMed: a OR b AND c == (a OR b) AND c, not a OR (b AND c)
    assert not _hit("alpha OR beta AND gamma", a_only)
    assert _hit("alpha OR beta AND gamma", a_c) and _hit("alpha OR beta AND gamma", b_c)
    assert _hit("alpha OR (beta AND gamma)", a_only)
    assert [g.name for g in derive_gates("alpha OR beta AND gamma").gates] == [
        "alpha / beta", "gamma"]
    # an OR last at the top level leaves one gate: ((a AND b) OR c)
    assert [g.name for g in derive_gates("alpha AND beta OR gamma").gates] == [
        "(alpha AND beta) / gamma"]
    assert _hit("alpha AND beta OR gamma", _doc("gamma"))
    # NOT too: (a NOT b) OR c
    assert _hit("alpha NOT beta OR gamma", _doc("beta gamma"))
    assert not _hit("alpha NOT (beta OR gamma)", _doc("alpha gamma"))


def test_parentheses_group_and_nest() -> None:
    query = "(alpha OR (beta AND delta)) AND gamma"
    assert _hit(query, _doc("beta delta gamma")) and _hit(query, _doc("alpha gamma"))
    assert not _hit(query, _doc("beta gamma"))
    assert [g.name for g in derive_gates(query).gates] == ["alpha / (beta AND delta)", "gamma"]
    # an AND group on the right of an AND is split into its gates too
    assert [g.name for g in derive_gates("alpha AND (beta AND gamma)").gates] == [
        "alpha", "beta", "gamma"]


def test_adjacent_words_are_anded_and_form_one_gate() -> None:
    query = "multiple myeloma AND maintenance"
    assert [g.name for g in derive_gates(query).gates] == ["multiple myeloma", "maintenance"]
    assert _hit(query, _doc("Myeloma (multiple) maintenance"))  # words, not a phrase
    assert not _hit(query, _doc("myeloma maintenance"))


# ----------------------------------------------------------------------------- matching
def test_phrases_match_word_sequences_tolerating_hyphens_and_case() -> None:
    for text in ("a Phase III trial", "a phase-III trial", "PHASE  III", "phase III."):
        assert _hit('"phase III"[tiab]', _doc(text)), text
    for text in ("a phase II trial", "III phase", "phase IIIb", "phaseIII"):
        assert not _hit('"phase III"[tiab]', _doc(text)), text
    assert _hit('"progression free"[tiab]', _doc(abstract="longer progression-free survival"))
    # a phrase never runs across two fields
    assert not _hit('"phase III"', _doc("Maintenance in phase", "III of the study"))


def test_words_match_on_word_boundaries_case_and_accent_insensitively() -> None:
    assert _hit("myeloma[tiab]", _doc("MYELOMA"))
    assert _hit("myelome[tiab]", _doc("Le myélome multiple"))
    assert not _hit("myeloma[tiab]", _doc("myelomatosis"))
    assert not _hit("oma[tiab]", _doc("myeloma"))


def test_trailing_wildcard_truncates() -> None:
    for word in ("randomised", "randomized", "randomization", "Randomisation", "randomi"):
        assert _hit("randomi*[tiab]", _doc(word)), word
    for word in ("random", "randomly", "nonrandomised"):
        assert not _hit("randomi*[tiab]", _doc(word)), word
    # inside a phrase, on any word
    assert _hit('"randomi* controlled"[tiab]', _doc("a randomised controlled trial"))
    assert not _hit('"randomi* controlled"[tiab]', _doc("randomised, placebo controlled"))


def test_field_tags_choose_the_fields() -> None:
    doc = _doc("Lenalidomide maintenance", "A randomised trial in myeloma.",
               keywords=("consolidation",), mesh=("Multiple Myeloma", "Humans"),
               pts=("Randomized Controlled Trial",))
    assert _hit("maintenance[ti]", doc) and not _hit("maintenance[ab]", doc)
    assert _hit("myeloma[ab]", doc) and not _hit("myeloma[ti]", doc)
    assert _hit("myeloma[Title/Abstract]", doc)
    # [tiab] and [ot] read author keywords; [ti]/[ab] do not
    assert _hit("consolidation[tiab]", doc) and _hit("consolidation[ot]", doc)
    assert not _hit("consolidation[ti]", doc) and not _hit("consolidation[ab]", doc)
    # [tw] and untagged terms also read the words of MeSH headings and publication types
    assert _hit("humans[tw]", doc) and _hit("humans", doc) and not _hit("humans[tiab]", doc)
    assert _hit("controlled", doc) and not _hit("controlled[tiab]", doc)


def test_mesh_matches_whole_headings_without_explosion() -> None:
    doc = _doc("A trial", mesh=("Multiple Myeloma", "Maintenance Chemotherapy"))
    for tag in ("Mesh", "mh", "MeSH Terms", "Mesh:noexp", "majr", "MAJR"):
        assert _hit(f'"multiple myeloma"[{tag}]', doc), tag
    assert not _hit('"Myeloma"[mh]', doc)  # a word of the heading is not the heading
    # no MeSH tree: a narrower heading is not found by its parent (PubMed would explode it)
    assert not _hit('"Multiple Myeloma"[mh]', _doc(mesh=("Smoldering Multiple Myeloma",)))
    # a heading is not a text word
    assert not _hit('"Multiple Myeloma"[mh]', _doc("Multiple myeloma maintenance"))


def test_publication_types_match_exactly() -> None:
    doc = _doc("x", pts=("Journal Article", "Randomized Controlled Trial"))
    assert _hit("randomized controlled trial[pt]", doc)
    assert _hit('"Randomized Controlled Trial"[Publication Type]', doc)
    assert not _hit("controlled trial[pt]", doc)
    assert not _hit("randomized controlled trial[pt]", _doc("randomized controlled trial"))


def test_not_excludes() -> None:
    assert _hit("myeloma NOT review[pt]", _doc("myeloma"))
    assert not _hit("myeloma NOT review[pt]", _doc("myeloma", pts=("Review",)))


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(("query", "fragments"), [
    ("myeloma[tiab] AND smith[au]", ["field tag [au] is not supported", "character 24",
                                     "'[au]'"]),
    ("myeloma AND 2020:2024[dp]", ["field tag [dp] is not supported", "character 22"]),
    ('myeloma AND ("2024/01/01"[crdt] : "3000"[crdt])',
     ["field tag [crdt] is not supported", "character 26"]),
    ('"maintenance therapy"[tiab:~3]', ["proximity search is not supported", "character 22"]),
    ("myeloma AND 2020:2024", ["ranges (a:b) cannot be evaluated", "'2020:2024'"]),
    ("myeloma[all fields]", ["field tag [all fields] is not supported"]),
    ("(myeloma OR plasmacytoma", ["'(' is never closed", "character 1"]),
    ("myeloma) AND maintenance", ["')' without '('", "character 8"]),
    ('"multiple myeloma AND maintenance', ["unterminated quote", "character 1"]),
    ("myeloma[tiab AND maintenance", ["unterminated field tag", "character 8"]),
    ("myeloma AND", ["a term is missing at the end"]),
    ("AND myeloma", ["expected a term or '(' before 'AND'", "character 1"]),
    ("myeloma AND OR maintenance", ["expected a term or '(' before 'OR'", "character 13"]),
    ("myeloma and maintenance", ["'and' is not an operator", "character 9"]),
    ("rand*mised[tiab]", ["'*' only truncates at the end of a word", "character 1"]),
    ("*[tiab]", ["'*' without a word before it"]),
    ('"Multiple Myelom*"[mh]', ["truncation (*) works only on text words"]),
    ('"Multiple Myeloma/drug therapy"[mh]', ["MeSH subheadings cannot be evaluated"]),
    ("(myeloma OR plasmacytoma)[tiab]", ["a field tag after parentheses", "character 26"]),
    ("#1 AND myeloma", ["history references (#1) cannot be evaluated", "character 1"]),
    ("[tiab]", ["field tag without a term before it", "character 1"]),
    ("(myeloma[tiab][ti])", ["a term takes one field tag", "character 15"]),
    ("   ", ["it is empty"]),
    # past Python's recursion limit these were a RecursionError, an internal error
    ("(" * 5000 + "myeloma" + ")" * 5000, ["parentheses nested more than 100 deep",
                                            "character 101"]),
    ("myeloma AND " * 5000 + "maintenance", ["it nests 5001 levels deep",
                                             "more than the 250 mmlr evaluates"]),
])
def test_what_cannot_be_evaluated_is_refused_with_its_position(
        query: str, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_query(query)
    message = caught.value.one_line()
    assert message.startswith("cannot evaluate the PubMed query: ")
    for fragment in fragments:
        assert fragment in message, message


def test_the_deepest_query_allowed_is_evaluated_and_written_back() -> None:
    # 250 levels (a chain of 250 terms; 100 parentheses inside each other) are read,
    # matched, labelled and written back within the recursion limit, from a deep caller
    chain = " OR ".join(f"word{i}[tiab]" for i in range(249)) + " OR myeloma[tiab]"
    nested = "(" * 100 + "myeloma" + ")" * 100
    def from_depth(n: int, node: Node) -> tuple[bool, str, str]:
        return ((matches(node, _doc("myeloma")), node.label(), node.to_query()) if n == 0
                else from_depth(n - 1, node))

    for query in (chain, nested):
        hit, label, written = from_depth(300, parse_query(query))
        assert hit and "myeloma" in label and parse_query(written).to_query() == written


def test_unsupported_tag_error_lists_the_supported_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_query("smith[au]")
    assert caught.value.hint is not None and "[tiab]" in caught.value.hint
    assert "[pt]" in caught.value.hint


def test_punctuation_inside_quotes_is_text() -> None:
    # ':' and '#' only mean ranges and history references outside quotes
    assert _hit('"myeloma: maintenance"[ti]', _doc("Myeloma: maintenance after ASCT"))
