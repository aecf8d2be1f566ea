"""``mmlr export metafor``: a CSV and an R script that reproduce every stored analysis.

The CSV holds the inputs of the newest snapshot of each analysis (one row per study, with the
method and metafor ``test`` it was pooled with: ``z`` for an analysis of one trial, which mmlr
pools with a Wald interval whatever the CI setting); the R script fits each analysis with
``rma()``, prints ``rma``/``predict``/``confint`` output and writes a results CSV with the same
fields as ``mmlr pool --json``, so a statistician can check our numbers without trusting us;
from two trials it also writes the leave-one-out table (``leave1out``) beside it, and from
three trials it runs Egger's test and trim-and-fill (``reports.small_study``).

Each row also says how its log HR was obtained (``derivation``: reported_ci, p_value_events,
hr_p_value, o_minus_e, medians, km_curves; ``approximate``) and, for a derived one, what the
curator typed, one column per input (``DERIVATION_COLUMNS``; empty when unused). Plain columns
rather than a JSON blob, so R reads them with ``read.csv`` alone; the R script re-derives every
such row (Parmar/Tierney, Tierney's SE from a printed HR and its P, Peto, exponential medians)
and prints the difference from ``yi``/``sei``.

A KM-curve row (``km_curves``, Guyot 2012) has its ``yi``/``sei`` like any other, but its
inputs are lists (the digitised points and at-risk table of each arm), which no scalar column
holds: they are written whole, as JSON, in one column (``derivation_inputs_json``; empty
for every other row), with ``orientation`` and the per-arm events also in their columns. The R
script does not re-derive those rows (that is a reconstruction and a Cox fit, which
``reports.derive.derive_from_inputs`` does); it counts them in a printed note.

Labels and trial names are written as typed, quoted where CSV needs it: R's ``read.csv`` reads
them as they are, and the spreadsheet guard of mmlr's other CSVs (a leading apostrophe before
``=``, ``+``, ``-``, ``@``) would have reached R as part of the name (``'-``).

The last column, ``risk_of_bias``, is the *current* overall RoB 2 judgment (``low``,
``some_concerns``, ``high``; ``store.bias``) of the row's trial for the row's endpoint (an EFS
estimate pooled in a PFS analysis is judged as EFS), empty when it has not been assessed: a
statistician can subset on it for a sensitivity analysis. It is read at export time, not
frozen in the snapshot, so it may be newer than the pooled numbers.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from reports.export_network import network_export_paths, write_network_export
from reports.meta import METAFOR_TEST
from reports.network_inputs import current_networks
from reports.outfile import (
    FOLDER_HINT,
    check_folder,
    check_target,
    ensure_folder,
    is_folder,
    open_out,
)
from reports.presentation import ci_used
from reports.r_script import r_prologue
from reports.selection import latest_results
from store.bias import current_assessments
from store.context import AppContext
from store.errors import ValidationError
from store.models import Estimate
from store.spreadsheet import r_row

log = logging.getLogger(__name__)

CSV_NAME = "mmlr-metafor.csv"
R_NAME = "mmlr-metafor.R"
#: How each estimate was obtained and, for a derived one, the inputs as entered.
DERIVATION_COLUMNS = ("derivation", "approximate", "orientation", "p_value", "favours",
                      "events", "n_maintenance", "n_control", "o_minus_e", "variance",
                      "median_maintenance", "median_control", "events_maintenance",
                      "events_control", "hr")
#: Methods whose inputs are not scalars: written as JSON in ``derivation_inputs_json``.
JSON_INPUT_METHODS = ("km_curves",)
CSV_COLUMNS = ("analysis", "label", "study", "estimate_id", "yi", "sei", "subgroup",
               "method", "test", "snapshot_id", *DERIVATION_COLUMNS, "derivation_inputs_json",
               "risk_of_bias")

R_SCRIPT = r"""# Reproduces every pooled analysis of mmlr with R metafor.
# Usage: Rscript mmlr-metafor.R [mmlr-metafor.csv] [results.csv]
# Each analysis: rma(yi, sei=sei, method=<as stored>, test=<knha|adhoc|z>) and predict(),
# from 2 trials the leave-one-out table (leave1out; written beside the results as
# <results>-leave-one-out.csv), and from 3 trials Egger's test (regtest, model="lm") and
# trimfill().
# hksj = test="knha", hksj-adhoc = test="adhoc", wald = test="z"; an analysis of one trial
# says "z" (mmlr pooled it with a Wald interval: Hartung-Knapp needs two trials).
# The convergence tolerances are tightened so that tau^2 is the converged value; with
# metafor's defaults the numbers agree to about 1e-5.
""" + r_prologue("mmlr-metafor.csv", "mmlr-metafor-results.csv") + r"""
loo <- list()
for (key in unique(dat$analysis)) {
  d <- dat[dat$analysis == key, ]
  cat("\n==== ", key, " (", d$label[1], ")\n", sep = "")
  res <- rma(yi = d$yi, sei = d$sei, slab = d$study, method = d$method[1], test = d$test[1],
             control = list(threshold = 1e-12, tol = 1e-12, maxiter = 10000))
  print(res)
  pr <- predict(res, transf = exp)
  print(pr)
  p <- predict(res)
  pi.lb <- if (is.null(p$pi.lb)) NA else p$pi.lb
  pi.ub <- if (is.null(p$pi.ub)) NA else p$pi.ub
  # Leave-one-out (mmlr's sensitivity table, from 2 trials): each study left out in turn,
  # pooled with the analysis' own method and test (a single trial left: metafor's z test,
  # as mmlr's).
  if (res$k >= 2) {
    l1 <- suppressWarnings(leave1out(res, control = list(threshold = 1e-12, tol = 1e-12,
                                                           maxiter = 10000)))
    print(l1)
    # A common-effect fit (MMLR_POOL_METHOD=FE) has no tau2 or I2 in leave1out: tau2 is 0
    # by the model, I2 follows from Q on k - 2 df as metafor's own rma reports it (NA where
    # Q is 0 on 0 df); without this the empty columns stopped the script at the first table.
    l1.tau2 <- if (is.null(l1$tau2)) rep(0, length(l1$Q)) else l1$tau2
    l1.i2 <- if (is.null(l1$I2)) {
      ifelse(l1$Q > 0, pmax(0, 100 * (l1$Q - (res$k - 2)) / l1$Q), NA)
    } else l1$I2
    loo[[length(loo) + 1]] <- data.frame(
      analysis = key, omitted = l1$slab, estimate = l1$estimate, se = l1$se,
      ci_low = l1$ci.lb, ci_high = l1$ci.ub, tau2 = l1.tau2, i2 = l1.i2, q = l1$Q,
      q_p = l1$Qp)
  }
  # Small-study effects (mmlr's funnel-plot view), from 3 trials with different SEs:
  # Egger's test and trim-and-fill. metafor 3.8's trimfill() prints a Wald CI whatever the
  # test; mmlr pools the augmented data with the analysis' own test, as the refit below.
  eg <- tf <- NULL
  if (res$k >= 3 && length(unique(d$sei)) > 1) {
    eg <- regtest(rma(yi = d$yi, sei = d$sei, method = "FE"), model = "lm")
    print(eg)
    tf <- trimfill(res, control = list(threshold = 1e-12, tol = 1e-12, maxiter = 10000))
    print(tf)
    tf.fit <- rma(yi = tf$yi, vi = tf$vi, method = d$method[1], test = d$test[1],
                  control = list(threshold = 1e-12, tol = 1e-12, maxiter = 10000))
  }
  rows[[length(rows) + 1]] <- data.frame(
    analysis = key, k = res$k, test = res$test, estimate = as.numeric(res$beta), se = res$se,
    ci_low = res$ci.lb, ci_high = res$ci.ub, pi_low = pi.lb, pi_high = pi.ub,
    hr = exp(as.numeric(res$beta)), hr_ci_low = exp(res$ci.lb), hr_ci_high = exp(res$ci.ub),
    tau2 = res$tau2, i2 = res$I2, q = res$QE, q_p = res$QEp,
    egger_p = if (is.null(eg)) NA else eg$pval,
    egger_limit = if (is.null(eg)) NA else as.numeric(eg$est),
    trimfill_side = if (is.null(tf)) NA else tf$side,
    trimfill_k0 = if (is.null(tf)) NA else tf$k0,
    trimfill_estimate = if (is.null(tf)) NA else as.numeric(tf.fit$beta),
    trimfill_ci_low = if (is.null(tf)) NA else tf.fit$ci.lb,
    trimfill_ci_high = if (is.null(tf)) NA else tf.fit$ci.ub)
}
write.csv(do.call(rbind, rows), output, row.names = FALSE)
cat("\nresults written to", output, "\n")
if (length(loo) > 0) {
  loo_output <- sub("(\\.csv)?$", "-leave-one-out.csv", output)
  write.csv(do.call(rbind, loo), loo_output, row.names = FALSE)
  cat("leave-one-out written to", loo_output, "\n")
}

# Re-derive every HR that was not reported with a CI, from the inputs the curator typed
# (maintenance vs control; O-E entered for the control arm changes sign).
# (a derived estimate entered before mmlr kept its inputs has none: it is counted, not checked)
# HRs reconstructed from KM curves (Guyot 2012) need the reconstruction and a Cox fit: their
# inputs are in derivation_inputs_json; they are counted here, not re-derived.
km_ids <- unique(dat$estimate_id[dat$derivation %in% "km_curves"])
if (length(km_ids) > 0)
  cat("\n", length(km_ids), " estimate(s) reconstructed from KM curves (km_curves) not ",
      "re-derived here: inputs in derivation_inputs_json\n", sep = "")
derived <- dat$derivation %in% c("p_value_events", "hr_p_value", "o_minus_e", "medians")
has_inputs <- !is.na(dat$orientation) & dat$orientation != ""
der <- dat[derived & has_inputs & !duplicated(dat$estimate_id), ]
missing <- length(unique(dat$estimate_id[derived & !has_inputs]))
if (missing > 0) cat("\n", missing, " derived estimate(s) without stored inputs\n", sep = "")
if (nrow(der) > 0) {
  yi <- sei <- rep(NA_real_, nrow(der))
  for (i in seq_len(nrow(der))) {
    r <- der[i, ]
    if (r$derivation == "p_value_events") {
      share <- if (is.na(r$n_maintenance)) 0.5 else
        r$n_maintenance / (r$n_maintenance + r$n_control)
      v <- r$events * share * (1 - share)
      z <- qnorm(as.numeric(r$p_value) / 2, lower.tail = FALSE)
      yi[i] <- ifelse(r$favours == "maintenance", -1, 1) * z * sqrt(v) / v
      sei[i] <- 1 / sqrt(v)
    } else if (r$derivation == "hr_p_value") {
      yi[i] <- ifelse(r$orientation == "control_vs_maint", -1, 1) * log(r$hr)
      sei[i] <- abs(log(r$hr)) / qnorm(as.numeric(r$p_value) / 2, lower.tail = FALSE)
    } else if (r$derivation == "o_minus_e") {
      oe <- ifelse(r$orientation == "control_vs_maint", -1, 1) * r$o_minus_e
      yi[i] <- oe / r$variance
      sei[i] <- 1 / sqrt(r$variance)
    } else if (r$derivation == "medians") {
      yi[i] <- log(r$median_control / r$median_maintenance)
      sei[i] <- if (is.na(r$events_maintenance)) sqrt(4 / r$events) else
        sqrt(1 / r$events_maintenance + 1 / r$events_control)
    }
  }
  cat("\n==== re-derived from the inputs entered\n")
  print(data.frame(estimate_id = der$estimate_id, study = der$study,
                   derivation = der$derivation, yi = der$yi, yi_rederived = yi,
                   sei = der$sei, sei_rederived = sei), row.names = FALSE)
  worst <- max(abs(c(yi - der$yi, sei - der$sei)))
  cat("largest difference:", format(worst, digits = 3), "\n")
  if (!is.finite(worst) || worst > 1e-9) warning("a derived estimate does not match its inputs")
}
"""


def write_metafor_export(ctx: AppContext, out: Path | None = None) -> list[Path]:
    """Write ``mmlr-metafor.csv`` and ``mmlr-metafor.R`` into ``out`` (a folder; default
    ``<data dir>/exports``) and return their paths."""
    folder = Path(out) if out is not None else ctx.settings.data_dir / "exports"
    # os.path.exists: a name the system cannot look up is named by ensure_folder below
    if os.path.exists(folder) and not is_folder(folder, what="the metafor export",
                                                hint=FOLDER_HINT):
        raise ValidationError(f"{folder} is a file; `mmlr export metafor --out` takes a folder")
    # Before the database is read: a folder that cannot be made fails at once, in one line.
    # It is made only once there is something to write: refused for want of pooled analyses,
    # the export left an empty --out folder behind.
    check_folder(folder, what="the metafor export", hint=FOLDER_HINT)
    with ctx.sessions() as session:
        snapshots = [s for s in latest_results(session) if s.k > 0]
        ids = {row["estimate_id"] for snap in snapshots for row in snap.inputs}
        estimates = {e.id: e for e in session.exec(
            select(Estimate).where(col(Estimate.id).in_(ids)))} if ids else {}
        bias: dict[tuple[int, str] | None, str] = {
            key: row.overall for key, row in current_assessments(session).items()}
    if not snapshots:
        raise ValidationError("no pooled analyses to export", hint="run `mmlr pool` first")
    ensure_folder(folder, what="the metafor export", hint=FOLDER_HINT)
    with ctx.sessions() as session:
        networks = current_networks(session, ctx.settings.analyses_file,
                                    ctx.settings.pool_method)
    csv_path, r_path = folder / CSV_NAME, folder / R_NAME
    # Every file this export writes is checked before the first is: one that cannot be
    # replaced (a folder, a link of that name) left the others written beside the old one.
    for target in (csv_path, r_path, *network_export_paths(folder, networks)):
        check_target(target, what="the metafor export", hint=FOLDER_HINT)
    with open_out(csv_path, what="the metafor export", hint=FOLDER_HINT) as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for snap in snapshots:
            # The test mmlr computed, not the one asked for: one trial is pooled with a Wald
            # interval whatever the setting (Hartung–Knapp needs k ≥ 2), and the script must
            # reproduce what the pages show.
            test = METAFOR_TEST[ci_used(snap.k, str(snap.settings.get("ci", "hksj")),
                                        snap.ci_method)]
            for row in snap.inputs:
                estimate = estimates.get(row["estimate_id"])
                writer.writerow(r_row([
                    snap.analysis_key, snap.analysis_label, row["trial"], row["estimate_id"],
                    repr(float(row["yi"])), repr(float(row["sei"])), row.get("subgroup") or "",
                    snap.method, test, snap.id, *_derivation_cells(estimate),
                    bias.get(_bias_key(row, estimate), "")]))
    with open_out(r_path, what="the metafor export", hint=FOLDER_HINT) as fh:
        fh.write(R_SCRIPT)
    log.info("metafor export of %d analyses written to %s", len(snapshots), folder)
    return [csv_path, r_path, *write_network_export(folder, networks)]


def _bias_key(row: dict[str, Any], estimate: Estimate | None) -> tuple[int, str] | None:
    """The (trial id, endpoint) whose RoB 2 judgment a snapshot row takes: the row's own,
    or, for a row of a snapshot older than those fields, its estimate's (None: neither)."""
    trial_id = row.get("trial_id", estimate.trial_id if estimate is not None else None)
    endpoint = row.get("endpoint", estimate.endpoint if estimate is not None else None)
    if trial_id is None or endpoint is None:
        return None
    return int(trial_id), str(endpoint).upper()


def _cell(value: Any) -> str:
    if value is None:
        return ""  # read.csv makes an empty numeric cell NA
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _derivation_cells(estimate: Estimate | None) -> list[str]:
    """``DERIVATION_COLUMNS`` and ``derivation_inputs_json`` of one row: empty when the
    estimate is gone (the snapshot still holds yi/sei) and, for the inputs, when it was
    reported with a CI; the JSON only for methods with list inputs (ASCII, so R reads it in
    any locale)."""
    if estimate is None:
        return [""] * (len(DERIVATION_COLUMNS) + 1)
    inputs = dict(estimate.derivation_inputs or {})
    head = [estimate.method, "TRUE" if estimate.approximate else "FALSE"]
    as_json = (json.dumps(inputs, sort_keys=True)
               if estimate.method in JSON_INPUT_METHODS and inputs else "")
    return head + [_cell(inputs.get(name)) for name in DERIVATION_COLUMNS[2:]] + [as_json]
