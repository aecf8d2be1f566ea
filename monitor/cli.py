"""The ``mmlr`` command line.

Exit codes (DESIGN §3): 0 ok, 1 failure with a one-line reason on stderr, 2 usage error.
This module is the one place where exceptions become exit codes: ``MmlrError`` prints its
one-line message; anything unexpected is logged with its traceback to the log file and the
user sees one line pointing there, never the traceback itself.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.exports import KINDS as EXPORT_KINDS
from reports.exports import SUBSETS as EXPORT_SUBSETS
from reports.words import plural
from store.errors import ConfigError, MmlrError, UsageError, ValidationError
from store.settings import (
    EARLIEST_POLL_DATE,
    PORT_RANGE,
    Settings,
    forget_passwords,
    load_settings,
    masked,
)
from store.utf8 import escaped, is_utf8

if TYPE_CHECKING:
    from store.context import AppContext

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


# ----------------------------------------------------------------------------- helpers


def _parse_date(value: str) -> date:
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            from datetime import datetime

            day = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        if day < EARLIEST_POLL_DATE:
            raise argparse.ArgumentTypeError(
                f"{value!r} is before {EARLIEST_POLL_DATE.isoformat()}: PubMed has no records "
                "created then")
        return day
    raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}")


def _port(value: str) -> int:
    """A TCP port for --port: the same rule as MMLR_PORT, a usage error (exit 2) otherwise."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    low, high = PORT_RANGE
    if not low <= port <= high:
        raise argparse.ArgumentTypeError(f"a port is from {low} to {high}, got {port}")
    return port


def _host(value: str) -> str:
    """An address for --host: the same rule as MMLR_HOST, a usage error (exit 2) otherwise. An
    empty one would bind every interface (or, for serve/web, fall back to MMLR_HOST)."""
    if not value.strip() or any(ch.isspace() for ch in value.strip()):
        raise argparse.ArgumentTypeError(f"not an address or host name: {value!r}")
    return value.strip()


def _address(value: str) -> str:
    """An e-mail address argument: bytes that are not UTF-8 (typed in a terminal of another
    encoding) reach Python as lone surrogates, which no database lookup can take (an internal
    error in `mmlr users password`, `mmlr subscribers remove`). A usage error (exit 2)."""
    if not is_utf8(value):
        raise argparse.ArgumentTypeError(f"'{escaped(value)}' is not UTF-8 text")
    return value


def _refuse_empty_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error (exit 2) for an argument given as "" (an unset shell variable:
    ``--out "$FILE"``). The commands read "" as "not given": ``digest --out ''`` delivered the
    digest to every subscriber instead of writing a file, ``poll --pmids ''`` ran the whole
    PubMed search, ``export --out ''`` wrote to the terminal. One check for every command and
    option, read from the parser, so a new option cannot bring the mistake back."""
    named: dict[str, argparse.Action] = {}

    def collect(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    collect(sub)
            else:
                named.setdefault(action.dest, action)

    collect(parser)
    for dest, value in vars(args).items():
        if isinstance(value, str) and not value.strip() and dest in named:
            action = named[dest]
            if action.option_strings:
                parser.error(f"argument {action.option_strings[-1]}: an empty value (give one, "
                             "or leave the option out)")
            parser.error(f"argument {action.metavar or dest}: an empty value")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextmanager
def _context(settings: Settings) -> Iterator[AppContext]:
    """The command's context, disposed however the command ends: on PostgreSQL an undisposed
    engine keeps its connections open until the process exits, and in a process that runs
    more than one command (the test suite runs them in its own) they pile up."""
    from store.context import make_context

    ctx = make_context(settings)
    try:
        yield ctx
    finally:
        ctx.dispose()


# ----------------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.bootstrap import initialise

    with _context(settings) as ctx:
        report = initialise(ctx)
    print(report.describe())
    return 0


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    pmids = _read_pmid_file(Path(args.pmids)) if args.pmids else None
    from monitor.poll import poll

    with _context(settings) as ctx:
        summary = poll(ctx, since=args.since, until=args.until, pmids=pmids, progress=True,
                       modified=args.modified)
    print(summary.describe())
    return 0


#: What a PMID file holds, as README's `mmlr poll --pmids` row says.
PMID_FILE_HINT = ("UTF-8 text, PMIDs as digits, one or more a line separated by spaces or "
                  "commas; # starts a comment")


def _read_pmid_file(path: Path) -> list[int]:
    """The PMIDs of a file, one or more a line (``#`` starts a comment), all checked before
    anything is fetched: a bad line must not leave a half-done poll run behind."""
    from store.ids import pmids_in
    from store.infile import input_file_problem

    if (problem := input_file_problem(path)) is not None:
        raise ValidationError(f"PMID file {path} {problem}")
    try:
        # utf-8-sig: Notepad and Excel start the file with a byte order mark, which made the
        # first PMID '\ufeff20099675' and refused it.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"PMID file {path} is not UTF-8 text",
                              hint=PMID_FILE_HINT) from None
    except OSError as exc:
        raise ValidationError(f"PMID file {path} cannot be read: {exc.strerror}") from None
    pmids = pmids_in(text, lambda lineno: f"{path}:{lineno}")
    if not pmids:
        # Most likely the wrong file or an export that failed upstream: a run of nothing would
        # be stored and reported as a successful poll.
        raise ValidationError(f"PMID file {path} lists no PMID",
                              hint=PMID_FILE_HINT)
    return pmids


def cmd_screen(args: argparse.Namespace, settings: Settings) -> int:
    from screening.service import screen

    with _context(settings) as ctx:
        summary = screen(ctx, force_retrain=args.retrain, progress=True)
    print(summary.describe())
    return 0


def cmd_pool(args: argparse.Namespace, settings: Settings) -> int:
    from reports.pool import pool_all

    with _context(settings) as ctx:
        run = pool_all(ctx)
    for text in run.unknown_drugs:  # pooled without them; a misspelt drug is no drug
        print(f"mmlr: warning: MMLR_ANALYSES_FILE: {text}", file=sys.stderr)
    if args.json:
        _print_json(run.to_json())
    else:
        print(run.describe())
    return 0


def cmd_meta(args: argparse.Namespace, settings: Settings) -> int:
    from reports.meta_cli import meta_from_csv

    result = meta_from_csv(Path(args.file), method=args.method, ci=args.ci)
    if args.json:
        _print_json(result.to_json())
    else:
        print(result.describe())
    return 0


def cmd_network(args: argparse.Namespace, settings: Settings) -> int:
    from reports.network_inputs import (
        arms_naming_no_trial,
        current_networks,
        describe,
        network_method,
        summary_json,
    )

    with _context(settings) as ctx, ctx.sessions() as session:
        items = current_networks(session, settings.analyses_file, settings.pool_method,
                                 without_high_rob=args.without_high_rob)
        unmatched = arms_naming_no_trial(session, settings.analyses_file)
    if unmatched:  # the networks are right without them, but a misspelt entry is no entry
        print(f"mmlr: warning: [[arms]] in MMLR_ANALYSES_FILE name no stored trial: "
              f"{', '.join(map(repr, unmatched))} (check the spelling against the trials' "
              "names on /trials; those entries change nothing)", file=sys.stderr)
    if args.key:
        items = [item for item in items if item[0].key == args.key]
        if not items:
            raise ValidationError(f"no network {args.key!r}",
                                  hint="run mmlr network without --key to list them")
    if args.json:
        _print_json({"method": network_method(settings.pool_method),
                     "without_high_rob": args.without_high_rob,
                     "arms_naming_no_trial": unmatched,
                     "networks": [summary_json(*item) for item in items]})
    else:
        print(describe(items))
    return 0


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    from reports.digest import build_digest, confirm_received, deliver_digest
    from reports.outfile import check_target, open_out
    from screening.health import screening_health

    if args.confirm_received is not None:
        if args.out or args.send or args.resend_unknown:
            raise UsageError("--confirm-received records what a recipient said; it builds and "
                             "sends nothing", hint="run it alone: mmlr digest "
                             "--confirm-received EMAIL")
        with _context(settings) as ctx:
            for line in confirm_received(ctx, args.confirm_received):
                print(line)
        return 0
    out = Path(args.out) if args.out else None
    hint = "--out takes the name of an HTML file: a new one, or a regular file to replace"
    if args.out == "-":  # was a file named "-" in the working folder
        raise UsageError("--out - (standard output) is not taken by mmlr digest: its "
                         "output says what was written and delivered", hint=hint)
    if args.resend_unknown and out is not None and not args.send:
        raise UsageError("--resend-unknown sends, while --out alone is a preview",
                         hint="add --send, or leave out --out")
    if out is not None:  # before the digest is built and stored: a wrong path changes nothing
        check_target(out, what="the digest", hint=hint)
    with _context(settings) as ctx:
        # --out alone is a preview: stored, but the next digest still counts from the last
        # one delivered, so the changes it shows are not used up before anyone got them.
        digest = build_digest(ctx, health=screening_health,
                              preview=out is not None and not args.send)
        if out is not None:
            with open_out(out, what="the digest", hint=hint) as fh:
                fh.write(digest.html)
            # said on the line itself: a preview goes to nobody and counts for nothing
            preview = "" if args.send else (" (a preview: delivered to nobody; the next digest "
                                            "still counts from the last one delivered)")
            print(f"digest #{digest.id} written to {out}{preview}")
        if args.send or not args.out:
            for line in deliver_digest(ctx, digest, resend_unknown=args.resend_unknown):
                print(line)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.cycle import run_cycle

    with _context(settings) as ctx:
        summary = run_cycle(ctx, progress=True)
    print(summary.describe())
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.service import serve

    serve(
        settings,
        web=args.command in ("serve", "web"),
        scheduler=args.command in ("serve", "worker"),
        host=args.host,
        port=args.port,
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.demo import run_demo

    return run_demo(settings, serve=not args.no_serve, port=args.port)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from screening.simulate import simulate

    prior_ids = None
    if args.prior_ids:
        try:
            pos, neg = (int(x) for x in args.prior_ids.split(","))
        except ValueError:
            raise UsageError(
                f"--prior-ids takes two record_id values POS,NEG, got {args.prior_ids!r}"
            ) from None
        prior_ids = (pos, neg)
    result = simulate(
        Path(args.dataset), seed=args.seed, prior_ids=prior_ids, progress=not args.json,
        stop_recall=args.stop_recall,
    )
    if args.json:
        _print_json(result.to_json())
    else:
        print(result.describe())
    return 0


def cmd_replay_server(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.replay_server import serve_forever

    serve_forever(
        Path(args.dir), host=args.host, port=args.port, faults=args.faults, seed=args.seed
    )
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from reports.exports import export
    from screening.health import stopping_supported

    # Path() drops a trailing slash, which is how a new folder is asked for ("--out new/").
    folder = bool(args.out) and args.out.endswith(("/", os.sep))
    out = None if args.out == "-" else args.out  # "-": standard output, as the default
    if args.out == "-" and args.kind == "metafor":
        raise UsageError("--out - is standard output, and the metafor export is a "
                         "folder of files", hint="name a folder, or leave --out out for "
                         "the exports/ folder of MMLR_DATA_DIR")
    with _context(settings) as ctx:
        written = export(ctx, args.kind, Path(out) if out else None,
                         stopping=partial(stopping_supported,
                                          target_recall=settings.stopping_recall),
                         folder=folder, only=args.only, excel=args.excel)
    if written.records is not None:
        # A record export of nothing is an empty file (a header line for CSV): said, so that
        # an empty records.ris is not taken for a failed export, or the review for a finished one.
        where = "" if written else " to standard output"
        empty = (": nothing matched" + (f" --only {args.only}" if args.only else "")
                 if written.records == 0 else "")
        print(f"{plural(written.records, 'record')} written{where}{empty}", file=sys.stderr)
    if written:  # the files last, one a line, as for every export
        print("\n".join(str(p) for p in written), file=sys.stderr)
    return 0


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from screening.web.auth import add_user

    with _context(settings) as ctx, ctx.sessions() as session:
        password = add_user(session, args.email, role=args.role, password=args.password)
        session.commit()
    print(f"user {args.email} ({args.role}) created")
    if password and not args.password:
        print(f"password (shown once): {password}")
    return 0


def cmd_users_password(args: argparse.Namespace, settings: Settings) -> int:
    from screening.web.auth import reset_password

    with _context(settings) as ctx, ctx.sessions() as session:
        reset = reset_password(session, args.email, password=args.password)
        session.commit()
    revoked = "; their API token was revoked" if reset.token_revoked else ""
    print(f"password of {args.email} changed; their sessions are logged out{revoked}")
    if reset.generated:
        print(f"password (shown once): {reset.generated}")
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import col, select

    from screening.web.auth import needs_rehash, token_expired
    from store.models import User, utcnow

    now = utcnow()
    with _context(settings) as ctx, ctx.sessions() as session:
        users = session.exec(select(User).order_by(col(User.email))).all()
    rows = []
    for user in users:
        expires = user.api_token_expires_at
        token = ("none" if not user.api_token_hash else
                 "expired" if token_expired(user, now) else "active")
        rows.append({"email": user.email, "role": user.role, "active": user.active,
                     "last_login_at": _iso(user.last_login_at), "api_token": token,
                     "api_token_expires_at": _iso(expires) if user.api_token_hash else None,
                     # never the hash itself: only whether the next login redoes it
                     "password_hash_current": bool(user.password_hash)
                     and not needs_rehash(user.password_hash)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        seen = f"last login {_utc(row['last_login_at'])}" if row["last_login_at"] else \
            "never logged in"
        token = {"none": "no API token", "active": "API token until {}",
                 "expired": "API token expired {}"}[str(row["api_token"])]
        line = [str(row["email"]), str(row["role"]),
                "active" if row["active"] else "deactivated", seen,
                token.format(_utc(row["api_token_expires_at"]))]
        if not row["password_hash_current"]:
            line.append("password stored at an older hash cost (redone at the next login; "
                        "or reset it with `mmlr users password`)")
        print("\t".join(line))
    if not rows:
        print("no users: `mmlr users add EMAIL --role admin` creates the first", file=sys.stderr)
    return 0


def _iso(moment: Any) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _utc(iso: Any) -> str:
    return "" if iso is None else f"{str(iso)[:10]} {str(iso)[11:16]} UTC"


def cmd_subscribers_add(args: argparse.Namespace, settings: Settings) -> int:
    from store.subscribers import add_subscriber

    with _context(settings) as ctx, ctx.sessions() as session:
        row = add_subscriber(session, args.email, actor="cli", resubscribe=args.resubscribe)
        session.commit()
    print(f"{row.email} subscribed to the digest")
    return 0


def cmd_subscribers_list(args: argparse.Namespace, settings: Settings) -> int:
    from store.addresses import normalise_email
    from store.subscribers import list_subscribers

    with _context(settings) as ctx, ctx.sessions() as session:
        rows = list_subscribers(session)
    fixed = list(dict.fromkeys(a for a in map(normalise_email, settings.digest_recipients) if a))
    fixed_state = "fixed (MMLR_DIGEST_TO: always receives, no unsubscribe link)"
    for row in rows:
        # An address in both lists counts as fixed (docs/operations.md): one line saying so,
        # where it used to be listed twice, as if it got two copies.
        state = (fixed_state + ("; also subscribed" if row.active else "; unsubscribed as a "
                                "subscriber") if row.email in fixed else
                 "active" if row.active else
                 f"unsubscribed {row.unsubscribed_at:%Y-%m-%d}" if row.unsubscribed_at
                 else "unsubscribed")
        print(f"{row.email}\t{state}\tadded {row.created_at:%Y-%m-%d} by {row.created_by}")
    listed = {row.email for row in rows}
    for address in fixed:
        if address not in listed:
            print(f"{address}\t{fixed_state}")
    if not rows and not fixed:
        print("no subscribers, and MMLR_DIGEST_TO is empty", file=sys.stderr)
    return 0


def cmd_subscribers_remove(args: argparse.Namespace, settings: Settings) -> int:
    from store.errors import NotFoundError
    from store.subscribers import find_subscriber, set_active

    with _context(settings) as ctx, ctx.sessions() as session:
        row = find_subscriber(session, args.email)
        if row is None:
            raise NotFoundError(f"{args.email.strip()} is not a subscriber",
                                hint="`mmlr subscribers list` shows who is")
        changed = set_active(session, row, False, actor="cli", via="cli")
        session.commit()
    print(f"{row.email} unsubscribed" if changed else f"{row.email} was already unsubscribed")
    return 0


def cmd_copy_db(args: argparse.Namespace, settings: Settings) -> int:
    from store.copy_db import copy_database, source_engine, target_engine

    target = target_engine(args.target)  # the argument typed is judged first
    try:
        source = source_engine(settings.db_url)
    except BaseException:
        target.dispose()
        raise
    try:
        bar: Any = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

            from store.progress import progress_bar

            bar = progress_bar(TextColumn("copying {task.description}"), BarColumn(),
                               MofNCompleteColumn())
        tasks: dict[str, Any] = {}

        def advance(table: str, rows: int) -> None:
            if bar is None:
                return
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=None)
            bar.advance(tasks[table], rows)

        with bar if bar is not None else nullcontext():
            report = copy_database(source, target, progress=advance)
    finally:
        source.dispose()
        target.dispose()
    print(report.describe())
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.status import gather_status

    report = gather_status(settings)
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.describe())
    if report.healthy:
        return 0
    # Not an MmlrError: the report above is the answer, and this line says why it is not ok.
    print(f"mmlr: attention: {report.reason()}", file=sys.stderr)
    return 1


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    from store.settings import settings_table

    rows = settings_table()
    if args.markdown:
        print("| variable | default | meaning |\n| --- | --- | --- |")
        for name, default, doc in rows:
            print(f"| `{name}` | {f'`{default}`' if default else '—'} | {doc} |")
    else:
        for name, default, doc in rows:
            print(f"{name:28} {default or '-':24} {doc}")
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmlr",
        description="mmlr keeps a systematic review of maintenance therapy in multiple "
        "myeloma alive: monitor PubMed, screen, pool, report.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="offline full cycle on the demo corpus, then serve the UI")
    p.add_argument("--no-serve", action="store_true", help="stop after the cycle")
    p.add_argument("--port", type=_port, default=None, help="web port (default MMLR_PORT)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("init", help="create/upgrade the schema, load seed evidence, first admin")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("poll", help="one monitoring pass over PubMed")
    p.add_argument("--since", type=_parse_date,
                   help="create-date (with --modified: modification-date) window start "
                   "(YYYY-MM-DD)")
    p.add_argument("--until", type=_parse_date,
                   help="create-date (with --modified: modification-date) window end "
                   "(YYYY-MM-DD)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--pmids", metavar="FILE", help="fetch the PMIDs listed in FILE instead")
    which.add_argument("--modified", action="store_true",
                       help="modification-date ([mdat]) pass: re-fetch stored records PubMed "
                       "changed (retractions, errata)")
    p.set_defaults(func=cmd_poll)

    p = sub.add_parser("screen", help="retrain after MMLR_RETRAIN_MIN_DECISIONS new "
                       "decisions (or --retrain), score unscored and outdated records")
    p.add_argument("--retrain", action="store_true", help="retrain even without new decisions")
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("pool", help="recompute every analysis")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("meta", help="pool the rows of a CSV (study, yi, sei | hr, ci_low, ci_high)")
    p.add_argument("file", metavar="FILE.csv",
                   help="UTF-8 CSV, comma-separated: study and yi,sei (log HR and its SE) or "
                        "hr,ci_low,ci_high; optionally subgroup and date")
    p.add_argument("--method", choices=["REML", "DL", "PM", "FE"], default="REML",
                   help="estimator of tau2 (default REML; FE: fixed effect)")
    p.add_argument("--ci", choices=["hksj", "hksj-adhoc", "wald"], default="hksj",
                   help="confidence interval: Hartung-Knapp-Sidik-Jonkman (default), the same "
                        "never narrower than wald, or normal quantiles")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_meta)

    p = sub.add_parser("network", help="network meta-analysis: every treatment against every "
                       "other")
    p.add_argument("--key", metavar="KEY", help="one network, e.g. PFS/all (default: all)")
    p.add_argument("--without-high-rob", action="store_true",
                   help="sensitivity: leave out trials at high risk of bias (RoB 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_network)

    p = sub.add_parser("digest", help="build the digest and deliver it (SMTP, or the outbox "
                       "folder)")
    p.add_argument("--out", metavar="FILE.html", help="write the HTML here instead of "
                   "delivering it (deliver too with --send)")
    p.add_argument("--send", action="store_true", help="deliver (SMTP or outbox)")
    p.add_argument("--resend-unknown", action="store_true", help="send again to the "
                   "recipients the digest may have reached (the server did not answer after "
                   "the message was sent); only when they say it did not arrive")
    p.add_argument("--confirm-received", metavar="EMAIL", help="record that EMAIL says the "
                   "digests it may have received (delivery unknown) did arrive; builds and "
                   "sends nothing")
    p.set_defaults(func=cmd_digest)

    p = sub.add_parser("run", help="poll → screen → pool → digest, once")
    p.set_defaults(func=cmd_run)

    for name, text in (("serve", "web app + scheduler"), ("web", "web app only")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", type=_host, default=None, help="address to listen on "
                       "(default MMLR_HOST)")
        p.add_argument("--port", type=_port, default=None, help="port to listen on "
                       "(default MMLR_PORT)")
        p.set_defaults(func=cmd_serve)
    # No --host/--port: the worker listens on nothing, and they used to change the address in
    # its digests' links (as for a web app served there) without a word.
    p = sub.add_parser("worker", help="scheduler only")
    p.set_defaults(func=cmd_serve, host=None, port=None)

    p = sub.add_parser("simulate", help="replay a labelled screening dataset")
    p.add_argument("dataset", metavar="DATASET.csv[.gz]")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the prior records' draw (default 0)")
    p.add_argument("--prior-ids", metavar="POS_ID,NEG_ID",
                   help="the record_id of one include and one exclude to start from, instead "
                        "of drawing them")
    p.add_argument("--stop-recall", type=float, metavar="R",
                   help="also report where the queue's stopping test at recall target R "
                        "(e.g. 0.95) would have stopped, and the recall reached there")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay-server", help="E-utilities-compatible server over PubMed XML")
    p.add_argument("--dir", required=True, help="folder of PubMed XML files (searched recursively)")
    p.add_argument("--host", type=_host, default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765)")
    p.add_argument("--faults", default=None, help="e.g. 429@3,500@7,timeout@9 or random:0.1")
    p.add_argument("--seed", type=int, default=0, help="seed of random faults")
    p.set_defaults(func=cmd_replay_server)

    p = sub.add_parser("export", help="export records or evidence")
    p.add_argument("kind", choices=EXPORT_KINDS)
    p.add_argument("--out", help="file (or folder for metafor); default, or -, stdout; for "
                   "metafor the exports/ folder of MMLR_DATA_DIR")
    p.add_argument("--only", choices=EXPORT_SUBSETS,
                   help="ris and csv: only these records: " + "; ".join(
                       f"{name}: {words}" for name, words in EXPORT_SUBSETS.items()))
    p.add_argument("--excel", action="store_true",
                   help="CSV exports: start with a byte order mark, so that Excel reads "
                        "accented names right (R and pandas do not need it)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("users", help="user administration")
    usub = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    pa = usub.add_parser("add", help="add a user")
    pa.add_argument("email", type=_address)
    pa.add_argument("--role", choices=["admin", "curator", "viewer"], required=True)
    pa.add_argument("--password", default=None, help="default: generated and printed once")
    pa.set_defaults(func=cmd_users)
    pp = usub.add_parser("password",
                         help="set a user's password; ends their sessions, revokes their API token")
    pp.add_argument("email", type=_address)
    pp.add_argument("--password", default=None, help="default: generated and printed once")
    pp.set_defaults(func=cmd_users_password)
    pl = usub.add_parser("list", help="every user: role, active, last login, API token, "
                         "whether the password hash is of the current cost")
    pl.add_argument("--json", action="store_true", help="a JSON list of objects")
    pl.set_defaults(func=cmd_users_list)

    p = sub.add_parser("subscribers", help="digest subscribers")
    ssub = p.add_subparsers(dest="subscribers_command", required=True, metavar="ACTION")
    ps = ssub.add_parser("add", help="subscribe an address to the digest")
    ps.add_argument("email", type=_address)
    ps.add_argument("--resubscribe", action="store_true",
                    help="subscribe again an address that unsubscribed (only if they asked)")
    ps.set_defaults(func=cmd_subscribers_add)
    ps = ssub.add_parser("list", help="subscribers and the fixed MMLR_DIGEST_TO addresses")
    ps.set_defaults(func=cmd_subscribers_list)
    ps = ssub.add_parser("remove", help="unsubscribe an address (kept, marked unsubscribed)")
    ps.add_argument("email", type=_address)
    ps.set_defaults(func=cmd_subscribers_remove)

    p = sub.add_parser("copy-db", help="copy the whole review into another, empty database "
                       "(SQLite to PostgreSQL or back), compared row by row")
    p.add_argument("target", metavar="TARGET_URL",
                   help="e.g. postgresql+psycopg://mmlr@db:5432/mmlr; give the password in "
                        "PGPASSWORD or ~/.pgpass rather than here, where `ps` shows it")
    p.set_defaults(func=cmd_copy_db)

    p = sub.add_parser("status", help="read-only health report: schema, last poll, digest, "
                       "screening, pooling, locks, alerts; exit 1 when something needs "
                       "attention")
    p.add_argument("--json", action="store_true", help="one JSON object (keys in "
                   "docs/operations.md)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("config", help="list every setting with its default")
    p.add_argument("--markdown", action="store_true",
                   help="the README's configuration table, in Markdown")
    p.set_defaults(func=cmd_config)
    return parser


class _MaskingFormatter(logging.Formatter):
    """Every record, traceback included, without a database password (``store.settings.
    masked``): a driver's error may quote its connection string, password and all."""

    def format(self, record: logging.LogRecord) -> str:
        return masked(super().format(record))


class _OneLineFormatter(_MaskingFormatter):
    """Console lines never carry a traceback (the log file keeps it), and each record is one
    line: a library's multi-line message (APScheduler quoting a driver's error while the
    database is down: the error, "Is the server running…", a link) is joined."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        # A name given as bytes that are not UTF-8 (``--out $'x\xff.csv'``) reaches Python
        # as a lone surrogate, which no stream can encode: logging then printed its own
        # "--- Logging error ---" traceback. Shown escaped (\udcff), whatever the stream.
        text = escaped(text)
        return " ".join(line.strip() for line in text.splitlines() if line.strip())


#: A log record's attribute (``extra=``) that keeps it off the terminal, in the log file only.
_FILE_ONLY = "mmlr_file_only"


def configure_logging(settings: Settings | None, verbose: bool) -> None:
    # MMLR_LOG_LEVEL is one of logging's level names (checked when the settings load).
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level if settings
                                                  else "INFO")
    handlers: list[logging.Handler] = []
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
    stream.setFormatter(_OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    stream.addFilter(lambda record: not getattr(record, _FILE_ONLY, False))
    handlers.append(stream)
    if settings is not None:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            # backslashreplace: a lone surrogate (a path or argument that is not UTF-8) is
            # written escaped instead of failing the record with a traceback on the terminal.
            fh = logging.FileHandler(settings.data_dir / "mmlr.log", encoding="utf-8",
                                     errors="backslashreplace")
            fh.setLevel(level)
            fh.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            handlers.append(fh)
        except OSError as exc:
            # Without its log file a command would run blind, and an internal error would
            # point at a log that does not exist: refuse now, naming the setting.
            folder = settings.data_dir
            try:  # (not Path.exists/is_dir: they raise for a name too long to look up)
                is_file = not stat.S_ISDIR(folder.stat().st_mode)
            except OSError:
                is_file = False
            why = "it is a file" if is_file else exc.strerror or str(exc)
            raise ConfigError(
                f"MMLR_DATA_DIR {folder} is not a writable folder ({why})",
                hint="set MMLR_DATA_DIR to a folder mmlr may create and write to") from None
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        if isinstance(h, logging.FileHandler):
            h.close()  # a second main() in one process must not leak the first file
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    # httpx logs every request with its full URL, which would include the API key.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


#: The line for a database another process holds locked (store.engine.database_locked).
LOCKED_LINE = ("the database is locked by another process ({reason}); run the command again "
               "once that process is done (an interrupted poll: the next poll resumes it)")


def main(argv: Sequence[str] | None = None) -> int:
    # A path or argument that is not UTF-8 reaches Python as a lone surrogate; printed back on
    # stdout ("digest written to …") it failed the command after its work was done. Shown
    # escaped (\udcff), as stderr and the log file show it.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    _refuse_empty_values(parser, args)
    settings: Settings | None = None
    forget_passwords()  # this command's database passwords only (the tests run many)
    try:
        settings = load_settings()
        configure_logging(settings, args.verbose)
        code = int(args.func(args, settings))
    except MmlrError as exc:
        print(f"mmlr: error: {masked(exc.one_line())}", file=sys.stderr)
        code = exc.exit_code
    except BrokenPipeError:  # `mmlr … | head`
        code = 0
    except KeyboardInterrupt:
        print("mmlr: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:  # the one place an unexpected error becomes a line, not a traceback
        from store.engine import (
            database_locked,
            database_read_only,
            database_unreachable,
            read_only_hint,
            unreachable_reason,
        )

        if database_unreachable(exc):  # an outage (PostgreSQL restarting), not a bug
            log.warning("`mmlr %s`: the database is unreachable: %s", args.command,
                        unreachable_reason(exc), extra={_FILE_ONLY: True})
            print(f"mmlr: error: the database is unreachable: {unreachable_reason(exc)} "
                  "(run the command again once it is back; an interrupted poll resumes)",
                  file=sys.stderr)
            return 1
        if database_locked(exc):  # another process's transaction, not a bug
            log.warning("`mmlr %s`: the database is locked by another process: %s",
                        args.command, unreachable_reason(exc), extra={_FILE_ONLY: True})
            print(f"mmlr: error: {LOCKED_LINE.format(reason=unreachable_reason(exc))}",
                  file=sys.stderr)
            return 1
        if database_read_only(exc) and settings is not None:  # set-up, not a bug
            log.warning("`mmlr %s`: the database is read-only: %s", args.command,
                        unreachable_reason(exc), extra={_FILE_ONLY: True})
            print(f"mmlr: error: the database cannot be written: {unreachable_reason(exc)}; "
                  f"nothing was changed ({read_only_hint(settings.db_url)})", file=sys.stderr)
            return 1
        # To the log file only: on the terminal it was a second line ("ERROR monitor.cli:
        # unexpected error…") before the one that says where the details are.
        log.exception("unexpected error in `mmlr %s`", args.command, extra={_FILE_ONLY: True})
        where = settings.data_dir / "mmlr.log" if settings else "the log"
        print(f"mmlr: internal error in `{args.command}`; details in {where}", file=sys.stderr)
        code = 1
    return code


def entrypoint() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())


__all__ = ["ConfigError", "build_parser", "main"]


if __name__ == "__main__":  # python -m monitor.cli
    sys.exit(main())
