"""Titles quoted in alerts are cut at a word boundary with an ellipsis, never inside a
combining sequence, a surrogate pair or a written-out character reference, and are escaped
only when shown (the digest's HTML)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from monitor.poll import ALERT_TITLE_CHARS, poll
from monitor.pubmed_xml import parse_all
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from reports.digest import build_digest
from store.context import make_context
from store.models import Alert
from store.settings import Settings
from store.text import ELLIPSIS, closed_bidi, shorten

# A real title (PMID 39382274) with non-ASCII letters around where a 120-character cut falls.
REAL = ("efetch_xml/metapub/pmid_xml/39382274.xml", 39382274)


def _mid_word(original: str, shortened: str) -> bool:
    """Whether ``shortened`` ends inside a word of ``original``."""
    head = shortened.removesuffix(ELLIPSIS)
    assert original.startswith(head)
    return head[-1:].isalnum() and original[len(head):len(head) + 1].isalnum()


def test_every_long_real_title_is_cut_between_words(pubmed_dir: Path) -> None:
    titles = [" ".join(r.title.split()) for path in sorted(pubmed_dir.rglob("*.xml*"))
              for r in parse_all(path, on_error="keep").records]
    long = [t for t in titles if len(t) > ALERT_TITLE_CHARS]
    assert len(long) > 100
    for title in long:
        cut = shorten(title, ALERT_TITLE_CHARS)
        assert len(cut) <= ALERT_TITLE_CHARS and cut.endswith(ELLIPSIS), title
        assert not _mid_word(title, cut), (title, cut)
        # the old slice cut most of them inside a word
    assert sum(_mid_word(t, t[:ALERT_TITLE_CHARS]) for t in long) > len(long) // 2


def test_short_text_is_kept_whole_and_whitespace_collapsed() -> None:
    assert shorten("Lenalidomide  maintenance\n after ASCT", 120) == (
        "Lenalidomide maintenance after ASCT")
    with pytest.raises(ValueError, match="limit"):
        shorten("anything", 1)


def test_no_trailing_punctuation_before_the_ellipsis() -> None:
    assert shorten("Lenalidomide maintenance: a randomised trial", 27) == (
        "Lenalidomide maintenance…")


@pytest.mark.parametrize(("text", "limit", "expected"), [
    # one long word (no boundary in reach): cut inside it, but not between "u" and U+0308
    ("Mu\u0308ller" * 3, 6, "Mu\u0308ll…"),
    ("Mu\u0308ller" * 3, 3, "M…"),
    # nor inside a character reference written out in the text
    ("AB&amp;CDEFGHIJ", 5, "AB…"),
    ("AB&#8211;CDEFGHIJ", 8, "AB…"),
    ("AB&amp;CDEFGHIJ", 8, "AB&amp;…"),  # its closing ";" is no punctuation to drop
    ("Myeloma; maintenance&amp;x", 10, "Myeloma…"),
    # nor inside an emoji ZWJ sequence or between an emoji and its skin-tone modifier
    ("ab\U0001F468\u200d\U0001F469\u200d\U0001F467cdefgh", 5, "ab…"),
    ("ab\U0001F44D\U0001F3FDcdefgh", 4, "ab…"),
    # nor between the two halves of a surrogate pair (text decoded with surrogateescape)
    ("ab\ud83d\ude00cdefgh", 4, "ab…"),
    # nothing but a sequence in reach: the ellipsis alone, never half of it
    ("&amp;" * 4, 4, "…"),
    ("(((( abc", 4, "(((…"),
])
def test_a_cut_inside_a_word_keeps_sequences_whole(text: str, limit: int,
                                                   expected: str) -> None:
    assert shorten(text, limit) == expected


def _settings(tmp_path: Path, db_url: str, url: str) -> Settings:
    return Settings(env="test", data_dir=tmp_path / "data", database_url=db_url,
                    entrez_url=url, entrez_email="tests@example.org", entrez_rate=500.0,
                    entrez_timeout=2.0, poll_start="2000/01/01")


def test_an_erratum_alert_quotes_a_real_title_whole_words_and_the_digest_escapes_it(
        tmp_path: Path, db_url: str, pubmed_dir: Path) -> None:
    [real] = [r for r in parse_all(pubmed_dir / REAL[0]).records if r.pmid == REAL[1]]
    # The real title behind characters HTML must escape, so the escaping is seen too.
    title = "<i>In vitro</i> & " + " ".join(real.title.split())
    assert len(title) > ALERT_TITLE_CHARS
    created = date.today() - timedelta(days=10)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article_set(corpus / "a.xml", [synthetic_article(3000, created=created, title=title)])
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(_settings(tmp_path, db_url, srv.url))
        poll(ctx, pmids=[3000], backoff_base=0.001)
        write_article_set(corpus / "a.xml", [synthetic_article(
            3000, created=created, title=title, comments=(("ErratumIn", 3001),))])
        srv.reload()
        poll(ctx, pmids=[3000], backoff_base=0.001)
        with ctx.sessions() as s:
            [alert] = s.exec(select(Alert)).all()
        quoted = alert.message.split(" (", 1)[1].rsplit(") has an erratum", 1)[0]
        assert quoted == shorten(title, ALERT_TITLE_CHARS) and quoted.endswith(ELLIPSIS)
        assert not _mid_word(title, quoted)
        assert "<i>In vitro</i> &" in alert.message  # stored as text, not escaped twice
        html = build_digest(ctx).html
        assert "&lt;i&gt;In vitro&lt;/i&gt; &amp; " in html  # escaped once, when shown
        assert "<i>In vitro" not in html
        ctx.dispose()


@pytest.mark.parametrize(("text", "shown"), [
    ("no controls at all", "no controls at all"),
    ("Maintenance \u202eABC", "Maintenance \u202eABC\u202c"),  # an override left open
    ("\u202aa\u202bb\u202cc", "\u202aa\u202bb\u202cc\u202c"),  # two open, one closed
    ("x \u202ey\u202c z", "x \u202ey\u202c z"),  # closed already: unchanged
    ("\u2067x\u202ey", "\u2067x\u202ey\u202c\u2069"),  # closed innermost first
    ("\u2067x\u202ey\u2069 z", "\u2067x\u202ey\u2069 z"),  # a PDI closes what it holds
    ("\u202ex\u2068y\u202c", "\u202ex\u2068y\u202c\u2069\u202c"),  # PDF in an isolate
    ("\u2069\u202c stray closers", "\u2069\u202c stray closers"),  # nothing to close
])
def test_bidirectional_levels_left_open_are_closed(text: str, shown: str) -> None:
    # UAX #9 (X6a, X7): a PDF inside an open isolate closes nothing; a PDI closes its
    # isolate and every embedding opened inside it.
    assert closed_bidi(text) == shown
