"""The gates of the keyword prior, derived from the protocol's PubMed query.

A protocol query ANDs concepts together: ``(myeloma terms) AND (maintenance terms) AND
(randomised-design terms)``. Each top-level AND-ed group becomes one *gate* a record must
match to be flagged by the prior, named after its terms ("Multiple Myeloma / myeloma"); a
group after a top-level ``NOT`` becomes a *must-not* gate ("NOT Review"). Because PubMed reads
operators left to right, only a chain of ANDs and NOTs splits into several gates; a query
whose last top-level operator is an OR is one gate. A record passes every gate exactly when
it matches the whole query (``screening.pubmed_query`` says how closely that follows PubMed).

Gates are derived once per query string and cached (``query_gates``): building them is
cheap, but the prior asks for them for every record it scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from screening.features import Document
from screening.pubmed_query import Node, Operation, RecordText, parse_query

log = logging.getLogger(__name__)


class Matcher(Protocol):
    def matches(self, record: RecordText) -> bool: ...


@dataclass(frozen=True)
class Gate:
    """One concept of the query: ``required`` gates must match, must-not gates must not."""

    name: str
    expression: str  # the group as a query, for the stored model configuration
    required: bool
    matcher: Matcher

    def passes(self, record: RecordText) -> bool:
        return self.matcher.matches(record) == self.required

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "expression": self.expression, "required": self.required}


@dataclass(frozen=True)
class QueryGates:
    """The gates of one query, in query order."""

    query: str | None  # None only for gates read back from a pre-query model configuration
    gates: tuple[Gate, ...]

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.gates]

    def failed(self, record: Document | RecordText) -> list[str]:
        """Names of the gates ``record`` does not pass, in query order."""
        rec = record if isinstance(record, RecordText) else RecordText(record)
        return [g.name for g in self.gates if not g.passes(rec)]

    def to_json(self) -> list[dict[str, object]]:
        return [g.to_json() for g in self.gates]


def _conjuncts(node: Node, required: bool = True) -> list[tuple[Node, bool]]:
    """The top-level AND-ed groups of ``node``; the right side of a NOT is a must-not group.
    Flattening is exact: ``a AND (b NOT c)`` is ``a ∧ b ∧ ¬c``."""
    if isinstance(node, Operation) and required and node.op in ("AND", "NOT"):
        right = _conjuncts(node.right) if node.op == "AND" else [(node.right, False)]
        return _conjuncts(node.left) + right
    return [(node, required)]


def derive_gates(query: str) -> QueryGates:
    """Parse ``query`` and split it into gates (ValidationError when it cannot be read)."""
    gates = []
    for node, required in _conjuncts(parse_query(query)):
        label = node.label()
        expression = node.to_query()
        if not required:
            label = f"NOT {label}"
            expression = f"NOT ({expression})" if isinstance(node, Operation) \
                else f"NOT {expression}"
        gates.append(Gate(name=label, expression=expression, required=required, matcher=node))
    return QueryGates(query=query, gates=tuple(gates))


@lru_cache(maxsize=16)
def query_gates(query: str) -> QueryGates:
    """``derive_gates`` cached by query string (errors are not cached)."""
    gates = derive_gates(query)
    log.debug("derived %s gates from the query: %s", len(gates.gates), "; ".join(gates.names))
    return gates
