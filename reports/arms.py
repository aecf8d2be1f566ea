"""How a trial's two arms read as treatments: its maintenance drug against its control.

Each trial's maintenance arm is its pooled drug (``Trial.drug``, the review's own vocabulary).
Its control arm is read from ``Trial.comparator``: maintenance agents named there (the
review's drugs and the other agents of ``AGENTS``; "no X"/"without X or Y" does not name X
or Y, nor does an agent of induction, one given at relapse or progression, or the drug a
placebo matches) that the maintenance arm also receives besides its pooled drug
(``Trial.regimen``) are background of an add-on design and drop out; what is left names the
control treatment, and nothing left (placebo, observation, "MP (no maintenance)") is
``NO_MAINTENANCE``. Curators correct a reading with an ``[[arms]]`` entry of
``MMLR_ANALYSES_FILE`` (``reports.analyses.load_arm_overrides``).

One reading for both uses: the network meta-analysis (``reports.network_inputs``) names its
nodes with it, and the pairwise drug-vs-control analyses (``reports.analyses.select_inputs``)
leave out a head-to-head trial, whose control arm reads as an active treatment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: ``reports.analyses.load_arm_overrides``: trial (normalised) → comparison key (None: the
#: trial's one comparison) → (treatment, control).
ArmOverrides = dict[str, dict[str | None, tuple[str, str]]]

ENTRY_SOURCE = "MMLR_ANALYSES_FILE [[arms]]"
READ_SOURCE = "read from the trial"


class TrialArms(Protocol):
    """What reading a trial's arms rests on (a ``reports.analyses.Candidate``)."""

    @property
    def drug(self) -> str: ...

    @property
    def regimen(self) -> str | None: ...

    @property
    def comparator(self) -> str | None: ...


class ComparisonArms(TrialArms, Protocol):
    """A trial's estimate of one comparison (a ``reports.analyses.Candidate``)."""

    @property
    def trial_id(self) -> int: ...

    @property
    def trial_name(self) -> str: ...

    @property
    def comparison(self) -> str: ...


class Extracted(ComparisonArms, Protocol):
    """An estimate as the selection sees it (a ``reports.analyses.Candidate``)."""

    @property
    def verified(self) -> bool: ...

    @property
    def withdrawn(self) -> bool: ...


def comparison_key(text: str | None) -> str:
    """A comparison as selection compares it: lower case, single spaces, "versus"/"vs."/"v."
    written "vs" (a new data cut typed "Lenalidomide versus placebo" is the same contrast as
    the seed's "lenalidomide vs placebo")."""
    words = " ".join((text or "").lower().split())
    return re.sub(r"(?<![\w-])(?:versus|vs\.?|v\.)(?=\s)", "vs", words)


#: The comparison stored when none is named: "the trial's comparison" (``Estimate.comparison``).
GENERIC_COMPARISON = "maintenance vs control"
UNNAMED_KEYS = {comparison_key(GENERIC_COMPARISON), ""}


def is_named_comparison(text: str | None) -> bool:
    """False for a blank comparison and the generic "maintenance vs control"."""
    return comparison_key(text) not in UNNAMED_KEYS


NO_MAINTENANCE = "no maintenance"
#: Maintenance agents recognised in a comparator besides the review's own drugs, with the
#: spellings trials use. Steroids count: alone they were maintenance in older trials.
AGENTS: dict[str, tuple[str, ...]] = {
    "interferon": ("interferon", "interferon-alpha", "interferon alfa", "ifn", "ifn-alpha",
                   "ifn-α", "ifn alpha", "ifn-a"),
    "prednisone": ("prednisone",),
    "prednisolone": ("prednisolone",),
    "dexamethasone": ("dexamethasone", "dex"),
    "thalidomide": ("thalidomide", "thal"),
    "lenalidomide": ("lenalidomide", "len"),
    "pomalidomide": ("pomalidomide",),
    "bortezomib": ("bortezomib",),
    "ixazomib": ("ixazomib",),
    "carfilzomib": ("carfilzomib",),
    "daratumumab": ("daratumumab",),
    "isatuximab": ("isatuximab",),
    "elotuzumab": ("elotuzumab",),
}
# "no X", "without X or Y": a negation takes the words it lists ("without thalidomide or
# interferon" named interferon when only its first word was negated).
_NEGATED = re.compile(r"\b(?:no|without|non)[\s-]+[\w-]+(?:\s+(?:or|nor)\s+[\w-]+)*",
                      re.IGNORECASE)
# A placebo matching a drug is no maintenance ("placebo (matching ixazomib)" read as
# ixazomib, both arms the same, and the trial was left out as a dose comparison).
_MATCHING = re.compile(r"\bmatching\s+[\w-]+|[\w-]+[\s-]matched\b", re.IGNORECASE)
# Induction is not maintenance: what a clause names up to "induction", never past the word
# "maintenance" or "then" ("VAD induction + thalidomide maintenance" keeps thalidomide;
# "melphalan + prednisone induction only (no maintenance)" named prednisone).
_INDUCTION = re.compile(r"(?:(?!maintenance|then)[^;,()])*\binduction\b", re.IGNORECASE)
# Nor is treatment at relapse or progression: a clause saying so names no maintenance
# ("observation; dex allowed at progression" read as dexamethasone). "Until progression"
# is how maintenance runs, and stays.
_AT_RELAPSE = re.compile(r"[^;,()]*\b(?:at|on|upon|after)\s+(?:relapse|progression)\b"
                         r"[^;,()]*", re.IGNORECASE)


def agents_named(text: str, vocabulary: dict[str, tuple[str, ...]]) -> set[str]:
    """The agents ``text`` names (not negated ones), by their vocabulary key."""
    text = text.lower()
    for pattern in (_AT_RELAPSE, _INDUCTION, _MATCHING, _NEGATED):
        text = pattern.sub(" ", text)
    found = set()
    for agent, spellings in vocabulary.items():
        # A spelling stands alone: no letter or digit before it, no letter after it. A hyphen
        # is a boundary ("α-interferon", "thalidomide-interferon") and so is a digit after
        # it ("IFN-α2b"): both read as no maintenance when either defeated the match.
        if any(re.search(rf"(?<!\w){re.escape(s)}(?![^\W\d])", text) for s in spellings):
            found.add(agent)
    return found


def read_arms(c: TrialArms, vocabulary: dict[str, tuple[str, ...]]) -> tuple[str, str]:
    """(treatment, control) of a trial, read as the module docstring says."""
    treatment = " ".join(c.drug.lower().split())
    # Background: what the maintenance arm receives besides the pooled drug. The pooled drug
    # itself never is, so "thalidomide 200 mg vs thalidomide 50 mg" reads as thalidomide on
    # both arms (a dose comparison, left out), not as thalidomide vs no maintenance.
    background = agents_named(c.regimen or "", vocabulary) - agents_named(c.drug, vocabulary)
    control = sorted(agents_named(c.comparator or "", vocabulary) - background)
    return treatment, "+".join(control) if control else NO_MAINTENANCE


def vocabulary_of(candidates: Iterable[TrialArms]) -> dict[str, tuple[str, ...]]:
    """``AGENTS`` plus every drug the review pools (a new agent is known once a trial of it
    is entered)."""
    vocab = dict(AGENTS)
    for c in candidates:
        drug = " ".join(c.drug.lower().split())
        vocab.setdefault(drug, (drug,))
    return vocab


def trial_key(name: str) -> str:
    """A trial's name as ``[[arms]]`` entries are matched: lower case, single spaces."""
    return " ".join(name.lower().split())


#: What an [[arms]] control arm may be called that is no maintenance: read from a trial's
#: comparator, placebo and observation are ``NO_MAINTENANCE``, and an entry naming them was
#: taken literally, a node of its own that disconnected its trials from the network.
_NONE_WORDS = frozenset(("placebo", "observation", "no maintenance", "none", "no treatment",
                         "no therapy", "untreated", "observation only", "placebo/observation",
                         "observation/placebo"))


def _no_maintenance_named(control: str) -> str:
    """An [[arms]] control as the network names it: ``NO_MAINTENANCE`` for its synonyms."""
    return NO_MAINTENANCE if " ".join(control.lower().split()) in _NONE_WORDS else control


@dataclass(frozen=True)
class ArmReading:
    """The vocabulary and the ``[[arms]]`` entries that read every trial's arms."""

    vocab: dict[str, tuple[str, ...]]
    overrides: ArmOverrides
    # Trial id → its one named comparison, where its verified current estimates name exactly
    # one: what its unnamed estimates stand for (``comparison_of``).
    named: dict[int, str] = field(default_factory=dict)
    # (trial, drug, regimen, comparator, comparison) → arms: the selection asks for every
    # estimate of every analysis at every step of the evidence over time.
    _read: dict[tuple[int, str, str, str | None, str | None, str], tuple[str, str, str]] = \
        field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, candidates: Sequence[Extracted],
           overrides: ArmOverrides | None = None) -> ArmReading:
        names: dict[int, dict[str, str]] = {}
        for c in candidates:
            if c.verified and not c.withdrawn and is_named_comparison(c.comparison):
                names.setdefault(c.trial_id, {}).setdefault(comparison_key(c.comparison),
                                                            c.comparison)
        return cls(vocabulary_of(candidates), overrides or {},
                   {trial: next(iter(found.values())) for trial, found in names.items()
                    if len(found) == 1})

    def comparison_of(self, c: ComparisonArms) -> str:
        """``c``'s comparison as the selection's rule 4 reads it: an unnamed one (a new data
        cut entered with the comparison blank) is the trial's one named comparison."""
        if is_named_comparison(c.comparison):
            return c.comparison
        return self.named.get(c.trial_id, c.comparison)

    def arms(self, c: ComparisonArms) -> tuple[str, str, str]:
        """(treatment, control, source) of ``c``'s contrast: its ``[[arms]]`` entry (the one
        of its comparison for a multi-arm trial's entries), else read from the trial."""
        ident = (c.trial_id, c.trial_name, c.drug, c.regimen, c.comparator, c.comparison)
        if ident not in self._read:
            self._read[ident] = self._arms(c)
        return self._read[ident]

    def _arms(self, c: ComparisonArms) -> tuple[str, str, str]:
        mapped = self.overrides.get(trial_key(c.trial_name), {})
        key = None if None in mapped else comparison_key(self.comparison_of(c))
        if key in mapped:
            treatment, control = mapped[key]
            return treatment, _no_maintenance_named(control), ENTRY_SOURCE
        return (*read_arms(c, self.vocab), READ_SOURCE)

    def active_control(self, c: ComparisonArms) -> tuple[str, str] | None:
        """(control, source) of a head-to-head contrast, whose control arm receives
        maintenance too; None for maintenance against no maintenance."""
        _, control, source = self.arms(c)
        return None if control == NO_MAINTENANCE else (control, source)
