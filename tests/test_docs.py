"""The documentation's pointers lead somewhere: a reader sent to docs/X.md, "Section" finds
that section there."""

from __future__ import annotations

import re

from conftest import ROOT

#: `docs/operations.md, "Databases"` and `(see docs/operations.md, "Moving to PostgreSQL")`,
#: the way README.md and docs/ point into another document (the pointer may wrap a line).
_POINTER = re.compile(r'(docs/[a-z_]+\.md)[,:]?\s*\(?"([^"\n]{3,80})"')


def _places(text: str) -> list[str]:
    """What a pointer may name in ``text``: a heading, a paragraph's bold lead
    (**The PRISMA flow.**) or a list item's lead (- Moving to PostgreSQL: …)."""
    heads = [m.group(1).strip() for m in re.finditer(r"^#+\s+(.+)$", text, re.M)]
    bold = re.findall(r"\*\*([^*\n]+?)\.?\*\*", text)
    items = re.findall(r"^- (?:\*\*)?([^:*\n]+)", text, re.M)
    return heads + bold + items


def test_every_pointer_to_a_section_of_another_document_names_one_that_exists() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pointers = [(doc.name, target, name) for doc in documents
                for target, name in _POINTER.findall(doc.read_text())]
    assert len(pointers) >= 5  # the pattern still finds the pointers the documents make
    broken = []
    for doc, target, name in pointers:
        path = ROOT / target
        places = _places(path.read_text()) if path.exists() else []
        # A heading may go on after the name it is known by ("Analyses of your own").
        if not any(place == name or place.startswith(name) for place in places):
            broken.append(f'{doc} sends the reader to {target}, "{name}": no such section')
    assert broken == []


def test_the_readme_names_every_page_with_a_csv_for_excel() -> None:
    """README's `--excel` item lists the pages whose CSV download has a "for Excel" twin; a
    page added without it (the audit trail) is one a reader does not know to look for."""
    templates = (ROOT / "screening" / "web" / "templates").glob("*.html")
    pages = {m for t in templates
             for m in re.findall(r'href="(/[a-z/_]+)\.csv\?[^"]*excel=1', t.read_text())}
    assert "/summary" in pages  # the pattern still finds the links
    readme = (ROOT / "README.md").read_text()
    [item] = [p for p in readme.split("\n- ") if p.startswith("`--excel`")]
    assert {p for p in pages if f"`{p}`" not in item} == set()
