"""`mmlr init`: seed evidence with citations, first admin, idempotent."""

from __future__ import annotations

import math

import pytest
from sqlmodel import select

from monitor.bootstrap import initialise, load_seed_evidence, seed_pmids
from store.models import AuditLog, Estimate, Trial, TrialReport, User


def test_init_loads_seed_evidence_and_one_admin(ctx) -> None:  # type: ignore[no-untyped-def]
    report = initialise(ctx)
    assert report.seed.trials_added >= 15 and report.seed.estimates_added == 11
    assert report.admin_email == "admin@localhost"
    assert report.admin_password is None  # given in the environment, so not printed
    with ctx.sessions() as s:
        admins = s.exec(select(User).where(User.role == "admin")).all()
        assert [a.email for a in admins] == ["admin@localhost"]
        calgb = s.exec(select(Trial).where(Trial.name == "CALGB 100104")).one()
        ests = s.exec(select(Estimate).where(Estimate.trial_id == calgb.id)).all()
        verified = [e for e in ests if e.verified]
        assert len(ests) == 2 and len(verified) == 1
        e = verified[0]
        assert (e.hr, e.ci_low, e.ci_high) == (0.57, 0.46, 0.71)
        assert e.log_hr == pytest.approx(math.log(0.57))
        assert e.se == pytest.approx((math.log(0.71) - math.log(0.46)) / (2 * 1.959964), rel=1e-6)
        assert e.citation and "Lancet Haematol 2017" in e.citation
        assert all(est.citation and est.source_key for est in s.exec(select(Estimate)).all())
        assert s.exec(select(AuditLog).where(AuditLog.action == "seed.estimate")).all()
        # one report per publication: CEMSG's estimate (read from the ASH abstract of the
        # paper whose PMID the seed gives) uses the trial's report of that PMID
        pairs = [(r.trial_id, r.pmid) for r in s.exec(select(TrialReport)).all() if r.pmid]
        assert len(pairs) == len(set(pairs))
        cemsg = s.exec(select(Trial).where(Trial.name == "CEMSG 01-002-0601")).one()
        (est,) = s.exec(select(Estimate).where(Estimate.trial_id == cemsg.id)).all()
        report = s.get(TrialReport, est.report_id)
        assert report is not None and report.pmid == 20418244
        assert "Haematologica 2010" in report.citation


def test_inverse_orientation_is_stored_as_maintenance_vs_control(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        load_seed_evidence(s)
        s.commit()
        trial = s.exec(select(Trial).where(Trial.name == "GBRAM0001")).one()
        est = s.exec(select(Estimate).where(Estimate.trial_id == trial.id)).one()
        assert est.orientation_entered == "control_vs_maint"
        assert est.hr == pytest.approx(1 / 2.43) and est.ci_low == pytest.approx(1 / 5.35)
        assert est.ci_high == pytest.approx(1 / 1.10) and est.log_hr < 0
        assert not est.verified


def test_strategy_trials_are_flagged(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        load_seed_evidence(s)
        s.commit()
        hovon = s.exec(select(Trial).where(Trial.name == "HOVON-65/GMMG-HD4")).one()
        assert hovon.is_strategy and hovon.drug == "bortezomib"


def test_init_twice_adds_nothing_and_keeps_curator_edits(ctx) -> None:  # type: ignore[no-untyped-def]
    initialise(ctx)
    with ctx.sessions() as s:
        trial = s.exec(select(Trial).where(Trial.name == "CEMSG 01-002-0601")).one()
        trial.notes = "edited by a curator"
        s.add(trial)
        s.commit()
        n_reports = len(s.exec(select(TrialReport)).all())
    again = initialise(ctx)
    assert (again.seed.trials_added, again.seed.reports_added, again.seed.estimates_added) == (
        0,
        0,
        0,
    )
    assert again.admin_email is None
    with ctx.sessions() as s:
        assert (
            s.exec(select(Trial).where(Trial.name == "CEMSG 01-002-0601")).one().notes
            == "edited by a curator"
        )
        assert len(s.exec(select(TrialReport)).all()) == n_reports
        assert {28826616, 25184862, 20418244, 16873668} <= seed_pmids(s)


def test_generated_admin_password_is_returned_once(ctx) -> None:  # type: ignore[no-untyped-def]
    ctx.settings = ctx.settings.model_copy(update={"admin_password": None})
    report = initialise(ctx)
    assert report.admin_password and len(report.admin_password) >= 12
    assert report.admin_password in report.describe()


def test_an_admin_password_against_the_policy_names_its_setting(ctx) -> None:  # type: ignore[no-untyped-def]
    """MMLR_ADMIN_PASSWORD is checked like any chosen password; the refusal says which setting
    to change, and nothing is created."""
    from pydantic import SecretStr

    from store.errors import ValidationError

    for given, fragment in [("short one", "is too short"),
                            ("admin of this review, first",
                             "contains 'admin', the name part of the account's e-mail")]:
        ctx.settings = ctx.settings.model_copy(update={"admin_password": SecretStr(given)})
        with pytest.raises(ValidationError, match=f"MMLR_ADMIN_PASSWORD: the password {fragment}"
                           ) as caught:
            initialise(ctx)
        assert "leave it unset" in (caught.value.hint or "") and given not in str(caught.value)
        with ctx.sessions() as s:
            assert s.exec(select(User)).all() == []


def test_inits_started_together_seed_once_and_all_succeed(ctx) -> None:  # type: ignore[no-untyped-def]
    """Two `mmlr init` at once on a new database (two containers starting): the migration
    was serialised, seed loading and the first admin were not, and all but one stopped with
    an internal error (a unique index on the trial's name). Now init runs under a lock and
    the later ones find the seed and the admin there."""
    import threading

    from store.context import make_context

    contexts = [make_context(ctx.settings) for _ in range(4)]
    barrier = threading.Barrier(len(contexts))
    outcomes: list[object] = []

    def init(context) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            outcomes.append(initialise(context))
        except Exception as exc:  # the failure is the finding
            outcomes.append(exc)

    threads = [threading.Thread(target=init, args=(c,)) for c in contexts]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for c in contexts:
            c.dispose()
    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert not failures, failures
    reports = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(reports) == 4
    assert sorted(r.seed.trials_added for r in reports)[:3] == [0, 0, 0]  # type: ignore[attr-defined]
    assert [r.admin_email for r in reports].count("admin@localhost") == 1  # type: ignore[attr-defined]
    with ctx.sessions() as s:
        names = [t.name for t in s.exec(select(Trial)).all()]
        assert len(names) == len(set(names)) >= 15
        assert len(s.exec(select(User).where(User.role == "admin")).all()) == 1


def test_one_publication_is_one_report_in_the_seed_and_in_the_prisma_flow(ctx) -> None:  # type: ignore[no-untyped-def]
    """GBRAM0001's ASH abstract was two reports (the trial's row and the estimate's worded it
    differently), and the joint TOURMALINE-MM3/-MM4 final analysis (one DOI) counted as two
    publications: the previous version's box said 23 reports for 21 publications."""
    from reports.prisma import PREVIOUS_REPORTS_STAGE, prisma_counts

    initialise(ctx)
    with ctx.sessions() as s:
        gbram = s.exec(select(Trial).where(Trial.name == "GBRAM0001")).one()
        (report,) = s.exec(select(TrialReport).where(TrialReport.trial_id == gbram.id)).all()
        (est,) = s.exec(select(Estimate).where(Estimate.trial_id == gbram.id)).all()
        assert est.report_id == report.id
        n = {stage: v for stage, v, _ in prisma_counts(s)}
        assert len(s.exec(select(TrialReport)).all()) == 22
        assert n[PREVIOUS_REPORTS_STAGE] == 21


def test_init_merges_the_duplicate_report_an_earlier_seed_made(ctx) -> None:  # type: ignore[no-untyped-def]
    """A database an earlier `mmlr init` loaded holds GBRAM0001's abstract twice, its estimate
    on the second row: the next init merges it into the first, the estimate with it."""
    initialise(ctx)
    with ctx.sessions() as s:
        gbram = s.exec(select(Trial).where(Trial.name == "GBRAM0001")).one()
        first = s.exec(select(TrialReport).where(TrialReport.trial_id == gbram.id)).one()
        old = TrialReport(trial_id=gbram.id, citation="Maiolino A et al. Blood 2008;112(11):3703 "
                          "(ASH abstract)", year=2008, source_key="MAIOLINO2008ASH",
                          kind="secondary")
        s.add(old)
        s.flush()
        est = s.exec(select(Estimate).where(Estimate.trial_id == gbram.id)).one()
        est.report_id = old.id
        s.add(est)
        s.commit()
        first_id = first.id
    again = initialise(ctx)
    assert again.seed.reports_added == 0
    with ctx.sessions() as s:
        reports = s.exec(select(TrialReport).where(TrialReport.trial_id == gbram.id)).all()
        assert [r.id for r in reports] == [first_id]
        assert s.exec(select(Estimate).where(Estimate.trial_id == gbram.id)).one().report_id \
            == first_id
        assert s.exec(select(AuditLog).where(AuditLog.action == "seed.report_merged")).all()
