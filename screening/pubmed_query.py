"""Read the subset of PubMed query syntax a protocol query uses, and evaluate it on one record.

The keyword prior (``screening.prior``) flags a record only when it matches the concepts the
protocol's query ANDs together; this module is what lets it read those concepts from the
query itself instead of a hard-coded copy. It is an approximation of PubMed, written down:

Syntax
    ``AND``, ``OR``, ``NOT`` (upper case, as PubMed requires) are applied strictly left to
    right with no precedence between them, as PubMed does: ``a OR b AND c`` is
    ``(a OR b) AND c``; parentheses group. Terms written next to each other without an
    operator are ANDed and bind tighter than any operator (``a b OR c`` is ``(a AND b) OR c``).
    A term is a quoted phrase or a run of unquoted words, optionally followed by one field tag
    (``randomized controlled trial[pt]``, ``"phase III"[tiab]``, ``maintenance [tiab]``).
    ``*`` at the end of a word truncates it (``randomi*``); only text-word fields take it.

Field tags and what they match
    ``[tiab]`` / ``[Title/Abstract]``: title, abstract and author keywords (as PubMed's help
    describes [tiab]; were it narrower, counting keywords only widens a gate, the recall-safe
    side). ``[ti]``, ``[ab]``: title, abstract. ``[ot]``: author keywords. ``[tw]`` /
    ``[Text Word]``: title, abstract, keywords, the words of the MeSH headings and of the
    publication types. Untagged terms:
    the same as ``[tw]`` — PubMed's Automatic Term Mapping (MeSH translation, then all
    fields) is not reproduced; reading the words in every field the prior sees is the closest
    recall-safe stand-in. ``[mh]`` / ``[Mesh]`` / ``[MeSH Terms]`` (also ``:noexp``) and
    ``[majr]``: a MeSH heading, matched exactly (case-insensitive). ``[majr]`` is read as
    ``[mh]`` because a Document does not carry the major-topic flag, and there is **no
    explosion**: PubMed's ``"Multiple Myeloma"[Mesh]`` also finds records indexed only with a
    narrower heading of the MeSH tree, which we do not have, so here it matches only the
    heading itself. ``[pt]`` / ``[Publication Type]``: a publication type, exactly
    (case-insensitive; PubMed's publication-type hierarchy is not exploded either).

Text-word matching
    Case- and accent-insensitive, on word boundaries. Text is cut into words at every
    character that is not a letter or digit, so a phrase matches the same words in sequence
    whatever separates them: ``"phase III"`` matches "phase III" and "phase-III",
    ``"progression free"`` matches "progression-free" (PubMed's indexing is roughly as
    tolerant); a word joined up ("nonsmall" for "non-small") does not match. A phrase never
    runs across two fields or two keywords. A run of unquoted words is read as its words
    ANDed in the field (the broader of PubMed's readings, which searches the phrase when its
    phrase index has it): quote a phrase to require it.

What is refused
    Anything this reader cannot evaluate faithfully raises ``ValidationError`` naming the
    token and its character position, never a silently ignored term: other field tags
    (``[au]``, ``[dp]``, ``[crdt]``, ``[sh]``, ``[All Fields]``, …), date ranges, proximity
    (``"…"[tiab:~3]``), MeSH subheadings (``"Multiple Myeloma/drug therapy"[mh]``),
    truncation outside text words, lower-case ``and``/``or``/``not``, history references
    (``#1``), unbalanced parentheses or quotes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from screening.features import Document
from store.errors import ValidationError

Kind = Literal["text", "mesh", "pt"]
Source = Literal["title", "abstract", "keywords", "mesh", "pt"]


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a term is looked for: words in some fields, or a whole controlled term."""

    tag: str  # canonical tag shown back to people ("" for untagged)
    kind: Kind
    sources: tuple[Source, ...] = ()


_TIAB = Scope("tiab", "text", ("title", "abstract", "keywords"))
_TW = Scope("tw", "text", ("title", "abstract", "keywords", "mesh", "pt"))
UNTAGGED = Scope("", "text", _TW.sources)
_MESH = Scope("mh", "mesh")
_PT = Scope("pt", "pt")

#: Field tags we evaluate (lower case, inner spaces collapsed) and their scope.
FIELD_TAGS: dict[str, Scope] = {
    "tiab": _TIAB, "title/abstract": _TIAB,
    "ti": Scope("ti", "text", ("title",)), "title": Scope("ti", "text", ("title",)),
    "ab": Scope("ab", "text", ("abstract",)), "abstract": Scope("ab", "text", ("abstract",)),
    "ot": Scope("ot", "text", ("keywords",)), "other term": Scope("ot", "text", ("keywords",)),
    "tw": _TW, "text word": _TW, "text words": _TW,
    "mh": _MESH, "mesh": _MESH, "mesh terms": _MESH, "mh:noexp": _MESH, "mesh:noexp": _MESH,
    "mesh terms:noexp": _MESH, "majr": _MESH, "mesh major topic": _MESH, "majr:noexp": _MESH,
    "mesh major topic:noexp": _MESH,
    "pt": _PT, "ptyp": _PT, "publication type": _PT,
}
SUPPORTED_TAGS_HINT = ("the keyword prior reads [tiab], [ti], [ab], [ot], [tw], "
                       "[mh]/[Mesh]/[MeSH Terms] (also :noexp), [majr], [pt] and untagged terms")
_OPERATORS = ("AND", "OR", "NOT")
_WORD = re.compile(r"[^\W_]+")
# Characters that end an unquoted word.
_DELIMITERS = frozenset('()[]"')


# ----------------------------------------------------------------------------- text
def fold(text: str) -> str:
    """Lower-case, accent-free text (é → e), so "Myélome" and "myelome" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def words(text: str) -> list[str]:
    """The words of ``text`` as matching sees them (see "Text-word matching")."""
    return _WORD.findall(fold(text))


def heading_key(term: str) -> str:
    """A MeSH heading or publication type as compared: case-insensitive, spaces collapsed."""
    return " ".join(fold(term).split())


class RecordText:
    """One record prepared for matching: each field's words, and its controlled terms.

    Each field (and each keyword, heading, type) is one line of space-separated words, so a
    phrase pattern can never match across two of them."""

    __slots__ = ("doc", "mesh", "pt", "text")

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.text: dict[Source, str] = {
            "title": " ".join(words(doc.title)),
            "abstract": " ".join(words(doc.abstract)),
            "keywords": "\n".join(" ".join(words(k)) for k in doc.keywords),
            "mesh": "\n".join(" ".join(words(m)) for m in doc.mesh),
            "pt": "\n".join(" ".join(words(p)) for p in doc.publication_types),
        }
        self.mesh = frozenset(heading_key(m) for m in doc.mesh)
        self.pt = frozenset(heading_key(p) for p in doc.publication_types)


# ----------------------------------------------------------------------------- query tree
@dataclass(frozen=True)
class Term:
    """One phrase, word or controlled term in one scope."""

    text: str  # as written, without quotes or tag
    scope: Scope
    quoted: bool
    position: int  # 1-based character position in the query
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, record: RecordText) -> bool:
        if self.scope.kind == "mesh":
            return heading_key(self.text) in record.mesh
        if self.scope.kind == "pt":
            return heading_key(self.text) in record.pt
        assert self.pattern is not None
        return any(self.pattern.search(record.text[s]) for s in self.scope.sources)

    def label(self) -> str:
        return self.text

    def to_query(self) -> str:
        text = f'"{self.text}"' if self.quoted or " " in self.text else self.text
        return f"{text}[{self.scope.tag}]" if self.scope.tag else text


@dataclass(frozen=True)
class AllWords:
    """A run of unquoted words: every one must match (see "Text-word matching")."""

    terms: tuple[Term, ...]
    text: str

    def matches(self, record: RecordText) -> bool:
        return all(t.matches(record) for t in self.terms)

    def label(self) -> str:
        return self.text

    def to_query(self) -> str:
        return " ".join(t.to_query() for t in self.terms)


@dataclass(frozen=True)
class Operation:
    """``left OP right``; a chain is left-deep because PubMed reads left to right."""

    op: Literal["AND", "OR", "NOT"]
    left: Node
    right: Node

    def matches(self, record: RecordText) -> bool:
        if self.op == "AND":
            return self.left.matches(record) and self.right.matches(record)
        if self.op == "OR":
            return self.left.matches(record) or self.right.matches(record)
        return self.left.matches(record) and not self.right.matches(record)

    def label(self) -> str:
        if self.op == "OR":
            seen: dict[str, str] = {}
            for part in _or_parts(self):
                text = part.label() if not isinstance(part, Operation) else f"({part.label()})"
                seen.setdefault(text.casefold(), text)
            return " / ".join(seen.values())
        return f"{_grouped(self.left, self.op)} {self.op} {_grouped(self.right, self.op)}"

    def to_query(self) -> str:
        # Read left to right, the left side never needs brackets; the right side does.
        right = self.right.to_query()
        if isinstance(self.right, Operation):
            right = f"({right})"
        return f"{self.left.to_query()} {self.op} {right}"


Node = Term | AllWords | Operation


def _or_parts(node: Node) -> list[Node]:
    if isinstance(node, Operation) and node.op == "OR":
        return _or_parts(node.left) + _or_parts(node.right)
    return [node]


def _grouped(node: Node, op: str) -> str:
    # AND chains read fine without brackets; anything else nested gets them.
    if isinstance(node, Operation) and not (node.op == op == "AND"):
        return f"({node.label()})"
    return node.label()



# ----------------------------------------------------------------------------- tokens
@dataclass(frozen=True, slots=True)
class Token:
    kind: Literal["(", ")", "phrase", "word", "tag", "op"]
    text: str
    position: int  # 1-based


def _error(message: str, position: int, token: str, hint: str | None = None) -> ValidationError:
    return ValidationError(f"cannot evaluate the PubMed query: {message} at character "
                           f"{position} ({token!r})", hint=hint)


def tokenize(query: str) -> list[Token]:
    """Split a query into parentheses, quoted phrases, words, field tags and operators."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(Token(ch, ch, i + 1))  # type: ignore[arg-type]
            i += 1
        elif ch in '"[':
            close = '"' if ch == '"' else "]"
            end = query.find(close, i + 1)
            if end < 0:
                what = "quote" if ch == '"' else "field tag"
                raise _error(f"unterminated {what}", i + 1, query[i:i + 30],
                             hint=f"close it with {close}")
            tokens.append(Token("phrase" if ch == '"' else "tag", query[i + 1:end], i + 1))
            i = end + 1
        elif ch == "]":
            raise _error("']' without '['", i + 1, ch)
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in _DELIMITERS:
                i += 1
            text = query[start:i]
            tokens.append(Token("op" if text in _OPERATORS else "word", text, start + 1))
    return tokens


# ----------------------------------------------------------------------------- parser
#: How deep a query may nest: parentheses inside parentheses, and terms joined in one chain
#: (a chain is a left-deep tree, each operator one level). The parser and the evaluation
#: recurse once per level, and past Python's recursion limit (1,000 frames) a query was a
#: RecursionError, an internal error at every start. Real protocol queries nest a few levels
#: and join tens of terms. (``label`` takes two frames a level: 250 levels stay far below it.)
MAX_PARENTHESES = 100
MAX_DEPTH = 250


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0
        self.open = 0  # parentheses open around the current token

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ValidationError("cannot evaluate the PubMed query: it is empty",
                                  hint="set MMLR_QUERY to the protocol's query")
        node = self.expression()
        extra = self.peek()
        if extra is not None:  # only a stray ')' can be left over
            raise _error("')' without '('", extra.position, extra.text)
        if (depth := _depth(node)) > MAX_DEPTH:
            raise ValidationError(
                f"cannot evaluate the PubMed query: it nests {depth} levels deep (terms joined "
                f"in one chain, and parentheses), more than the {MAX_DEPTH} mmlr evaluates",
                hint="group the terms of long OR lists in parentheses")
        return node

    def expression(self) -> Node:
        node = self.operand()
        while (token := self.peek()) is not None and token.kind == "op":
            self.take()
            node = Operation(token.text, node, self.operand())  # type: ignore[arg-type]
        return node

    def operand(self) -> Node:
        parts: list[Node] = []
        while (token := self.peek()) is not None and token.kind in ("(", "phrase", "word"):
            parts.append(self.unit())
        if not parts:
            token = self.peek()
            if token is None:
                raise _error("a term is missing at the end", len(self.query) + 1,
                             self.query[-20:])
            if token.kind == "tag":
                raise _error("field tag without a term before it", token.position,
                             f"[{token.text}]")
            raise _error(f"expected a term or '(' before {token.text!r}", token.position,
                         token.text)
        node = parts[0]
        for part in parts[1:]:  # terms side by side are ANDed (PubMed's reading)
            node = Operation("AND", node, part)
        return node

    def unit(self) -> Node:
        token = self.take()
        if token.kind == "(":
            self.open += 1
            if self.open > MAX_PARENTHESES:
                raise _error(f"parentheses nested more than {MAX_PARENTHESES} deep",
                             token.position, self.query[token.position - 1:token.position + 9])
            node = self.expression()
            self.open -= 1
            close = self.peek()
            if close is None or close.kind != ")":
                raise _error("'(' is never closed", token.position,
                             self.query[token.position - 1:token.position + 29])
            self.take()
            tag = self.peek()
            if tag is not None and tag.kind == "tag":
                raise _error("a field tag after parentheses is not applied by PubMed",
                             tag.position, f"[{tag.text}]",
                             hint="tag each term inside the parentheses")
            return node
        if token.kind == "phrase":
            scope, tag_text = self.tag()
            return _term(token.text, scope, quoted=True, position=token.position,
                         written=f'"{token.text}"{tag_text}')
        run = [token]
        while (nxt := self.peek()) is not None and nxt.kind == "word":
            run.append(self.take())
        scope, tag_text = self.tag()
        return _run(run, scope, tag_text)

    def tag(self) -> tuple[Scope, str]:
        token = self.peek()
        if token is None or token.kind != "tag":
            return UNTAGGED, ""
        self.take()
        name = " ".join(token.text.lower().split())
        written = f"[{token.text}]"
        second = self.peek()
        if second is not None and second.kind == "tag":
            raise _error("a term takes one field tag", second.position, f"[{second.text}]",
                         hint="OR the term in each field: a[ti] OR a[ab]")
        if "~" in name:
            raise _error("proximity search is not supported", token.position, written,
                         hint="use a quoted phrase, or AND the words")
        scope = FIELD_TAGS.get(name)
        if scope is None:
            raise _error(f"field tag {written} is not supported", token.position, written,
                         hint=SUPPORTED_TAGS_HINT)
        return scope, written


def _run(run: list[Token], scope: Scope, tag_text: str) -> Node:
    """A run of unquoted words: one controlled term, or the words ANDed (module docstring)."""
    for token in run:
        if token.text.lower() in ("and", "or", "not"):
            raise _error(f"{token.text!r} is not an operator (PubMed's are upper case)",
                         token.position, token.text,
                         hint=f"write {token.text.upper()}, or quote the phrase")
    text = " ".join(t.text for t in run)
    if scope.kind != "text":  # a heading or type is one term: randomized controlled trial[pt]
        return _term(text, scope, quoted=False, position=run[0].position,
                     written=text + tag_text)
    terms = tuple(_term(t.text, scope, quoted=False, position=t.position,
                        written=t.text + tag_text) for t in run)
    return terms[0] if len(terms) == 1 else AllWords(terms, text)


def _term(text: str, scope: Scope, *, quoted: bool, position: int, written: str) -> Term:
    """Check one term and compile its pattern; ValidationError for what we cannot evaluate."""
    for bad, why, hint in (
        ("#", "history references (#1) cannot be evaluated", "write the search out"),
        (":", "ranges (a:b) cannot be evaluated", "remove the range; polling adds dates"),
        ("~", "proximity search is not supported", "use a quoted phrase, or AND the words"),
    ):
        if bad in text and not quoted:  # inside quotes they are just punctuation
            raise _error(why, position, written, hint=hint)
    if scope.kind != "text":
        if "*" in text:
            raise _error("truncation (*) works only on text words", position, written,
                         hint=f"write the whole term in [{scope.tag}]")
        if scope.kind == "mesh" and "/" in text:
            raise _error("MeSH subheadings cannot be evaluated (records carry headings only)",
                         position, written, hint="drop the /subheading")
        if not text.strip():
            raise _error("empty term", position, written)
        return Term(text.strip(), scope, quoted, position)
    parts: list[str] = []
    for chunk in text.split():
        wildcard = chunk.endswith("*")
        stem = chunk[:-1] if wildcard else chunk
        if "*" in stem:
            raise _error("'*' only truncates at the end of a word", position, written,
                         hint="e.g. randomi*")
        found = words(stem)
        if not found:
            raise _error("no word to match" if not wildcard else "'*' without a word before it",
                         position, written)
        parts += [re.escape(w) for w in found]
        if wildcard:
            parts[-1] += r"\S*"
    # Words are single-space separated and fields newline separated (RecordText).
    pattern = re.compile(r"(?<!\S)" + " ".join(parts) + r"(?!\S)")
    return Term(" ".join(text.split()), scope, quoted, position, pattern)


def _depth(node: Node) -> int:
    """The tree's depth, without recursion (what it guards against)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(current, Operation):
            stack += [(current.left, level + 1), (current.right, level + 1)]
    return deepest


def parse_query(query: str) -> Node:
    """The tree of ``query``; ValidationError naming the token and position it cannot read."""
    return _Parser(query).parse()


def matches(node: Node, doc: Document | RecordText) -> bool:
    """Whether the record matches the query (as far as the approximation goes)."""
    return node.matches(doc if isinstance(doc, RecordText) else RecordText(doc))
