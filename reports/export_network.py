"""``mmlr export metafor`` also writes the networks: a CSV and an R script that refit every
network meta-analysis of the review with R metafor, so a statistician can check the network
page's numbers without trusting us.

``mmlr-network.csv`` has one row per contrast as fitted (``reports.network_inputs``): the
network's key and label, the trial, its treatment and control arm, the log HR and its SE, the
estimate's id, the reference treatment and the model (REML or FE). ``mmlr-network.R`` builds
everything model-specific from the treatment names itself — a multi-arm trial's contrasts
turned against their common arm, the design matrix, the within-trial covariance (correlation
½, capped at the smaller contrast variance),
``rma.mv(yi, V, mods = X, random = ~ comp | study, rho = 1/2)`` and the common-effect fit,
the design-by-treatment interaction model (Q within designs) and the direct pool, with the
network's τ², of every pair of arms a trial randomised (a multi-arm trial's pairs weighted
by Rücker's method from its contrasts and their covariance, as netmeta's ``netsplit``) —
prints each treatment's HR against the reference and writes the numbers in long form
(network, what, name, value).
``tests/test_network_metafor.py`` runs this same script as its oracle.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

from reports.network_inputs import Fitted
from reports.outfile import FOLDER_HINT, open_out
from reports.r_script import r_prologue
from store.spreadsheet import r_row

log = logging.getLogger(__name__)

CSV_NAME = "mmlr-network.csv"
R_NAME = "mmlr-network.R"
CSV_COLUMNS = ("network", "label", "study", "treat", "control", "yi", "sei", "estimate_id",
               "ref", "method")

R_SCRIPT = r"""# Refits every network meta-analysis of mmlr with R metafor.
# Usage: Rscript mmlr-network.R [mmlr-network.csv] [results.csv]
# Per network: rma.mv(yi, V, mods = X, intercept = FALSE, random = ~ comp | study,
# rho = 1/2, method = "REML") (or method = "FE"), with X built from the treatment names
# (+1 treatment arm, -1 control arm, no column for the reference) and V the within-trial
# covariance: two contrasts of one multi-arm trial share their control arm, correlation 1/2,
# the covariance capped at the smaller of the two contrasts' variances.
# Also: the common-effect fit's Q, the design-by-treatment interaction model's Q (Q within
# designs; Q - Q within is the inconsistency, and for a random-effects network its version
# with the interaction model's tau^2), the direct pool, with the network's tau^2, of
# each pair of arms some trial randomised (a multi-arm trial's pairs weighted by Ruecker's
# method, as netmeta's netsplit), and each treatment's 95% prediction interval (random
# effects). The results file is long: network, what, name, value.
""" + r_prologue("mmlr-network.csv", "mmlr-network-results.csv") + r"""
put <- function(net, what, name, value) {
  rows[[length(rows) + 1]] <<- data.frame(network = net, what = what, name = name,
                                          value = sprintf("%.17g", value))
}
design_matrix <- function(d, trts) {
  all <- sort(unique(c(d$treat, d$control)))
  x <- matrix(0, nrow(d), length(all), dimnames = list(NULL, all))
  for (i in seq_len(nrow(d))) {
    x[i, d$treat[i]] <- x[i, d$treat[i]] + 1
    x[i, d$control[i]] <- x[i, d$control[i]] - 1
  }
  x[, trts, drop = FALSE]
}
# Tight tolerance first (we compare solutions, not stopping rules); nlminb may refuse it on a
# flat likelihood, then metafor's defaults. With as many contrasts as effects tau^2 is not
# identified and metafor may fail outright: recorded as NA, the common-effect fit stands in.
ctrl <- list(rel.tol = 1e-12, iter.max = 10000, eval.max = 10000)
for (net in unique(dat$network)) {
  d <- dat[dat$network == net, ]
  for (st in unique(d$study[duplicated(d$study)])) {
    s <- which(d$study == st)
    common <- Reduce(intersect, lapply(s, function(i) c(d$treat[i], d$control[i])))
    flip <- s[d$treat[s] == common]
    d[flip, c("treat", "control")] <- d[flip, c("control", "treat")]
    d$yi[flip] <- -d$yi[flip]
  }
  ref <- d$ref[1]
  trts <- setdiff(sort(unique(c(d$treat, d$control))), ref)
  x <- design_matrix(d, trts)
  same <- outer(d$study, d$study, "==") * 1
  diag(same) <- 0
  # correlation 1/2, but no covariance above the smaller contrast variance (the shared arm's
  # variance is part of both; one SE more than twice the other would exceed it)
  V <- diag(d$sei^2, nrow(d)) +
    same * pmin(0.5 * outer(d$sei, d$sei), outer(d$sei^2, d$sei^2, pmin))
  d$comp <- paste(d$treat, d$control, sep = ":")
  fe <- rma.mv(d$yi, V, mods = x, intercept = FALSE, method = "FE")
  fit_re <- function(control) {
    rma.mv(d$yi, V, mods = x, intercept = FALSE, random = ~ comp | study, rho = 1/2,
           data = d, method = "REML", control = control)
  }
  re <- NULL
  if (d$method[1] == "REML") {
    re <- tryCatch(fit_re(ctrl), error = function(e) tryCatch(fit_re(list()),
                                                              error = function(e) NULL))
  }
  if (is.null(re)) {
    put(net, "tau2", "", if (d$method[1] == "REML") NA else 0)
    re <- fe
    re$tau2 <- 0
  } else {
    put(net, "tau2", "", re$tau2)
  }
  cat("\n==== ", net, " (", d$label[1], "): ", nrow(d), " contrasts, tau^2 = ",
      format(re$tau2, digits = 4), "\n", sep = "")
  for (j in seq_along(trts)) {
    put(net, "fe_b", trts[j], fe$beta[j])
    put(net, "fe_se", trts[j], fe$se[j])
    put(net, "re_b", trts[j], re$beta[j])
    put(net, "re_se", trts[j], re$se[j])
    cat(sprintf("  %-24s HR vs %s %.2f (%.2f to %.2f)\n", trts[j], ref, exp(re$beta[j]),
                exp(re$ci.lb[j]), exp(re$ci.ub[j])))
  }
  if (d$method[1] == "REML") {
    # 95% prediction intervals of each treatment vs the reference (random effects only; the
    # common-effect stand-in above has none, and its CI is the interval with tau^2 = 0)
    pr <- predict(re, newmods = diag(length(trts)), tau2.levels = rep(1, length(trts)))
    for (j in seq_along(trts)) {
      put(net, "re_pi_lb", trts[j], if (is.null(pr$pi.lb)) pr$ci.lb[j] else pr$pi.lb[j])
      put(net, "re_pi_ub", trts[j], if (is.null(pr$pi.ub)) pr$ci.ub[j] else pr$pi.ub[j])
    }
  }
  put(net, "qe", "", fe$QE)
  put(net, "qe_df", "", fe$k - fe$p)
  arms <- tapply(c(d$treat, d$control), c(d$study, d$study),
                 function(a) paste(sort(unique(a)), collapse = "|"))
  d$design <- arms[d$study]
  blocks <- list()
  for (des in unique(d$design)) {
    t <- strsplit(des, "|", fixed = TRUE)[[1]]
    xd <- design_matrix(d, t)[, -1, drop = FALSE]
    xd[d$design != des, ] <- 0
    colnames(xd) <- paste(des, colnames(xd))
    blocks[[des]] <- xd
  }
  xi <- do.call(cbind, blocks)
  q_within <- 0
  if (ncol(xi) < nrow(d)) {
    q_within <- rma.mv(d$yi, V, mods = xi, intercept = FALSE, method = "FE")$QE
  }
  put(net, "q_within", "", q_within)
  if (d$method[1] == "REML") {
    # Q between designs of the random-effects network (Krahn et al. 2013; netmeta's
    # Q.inc.random): tau^2 of the full design-by-treatment interaction model (REML), then
    # the consistency model's Q minus the interaction model's, both with that tau^2
    # (marginal covariance M = V + tau^2 P)
    if (ncol(xi) < nrow(d)) {
      fit_dbt <- function(control) {
        rma.mv(d$yi, V, mods = xi, intercept = FALSE, random = ~ comp | study, rho = 1/2,
               data = d, method = "REML", control = control)
      }
      dbt <- NULL
      for (control in list(ctrl, list(), list(optimizer = "optimize"))) {
        dbt <- tryCatch(fit_dbt(control), error = function(e) NULL)
        if (!is.null(dbt)) break
      }
      if (is.null(dbt)) {
        put(net, "tau2_within", "", NA)
        put(net, "q_between_random", "", NA)
      } else {
        cons <- rma.mv(d$yi, V, mods = x, intercept = FALSE, random = ~ comp | study,
                       rho = 1/2, tau2 = dbt$tau2, data = d, method = "REML")
        m_inv <- solve(vcov(dbt, type = "obs"))
        rc <- as.numeric(resid(cons))
        ri <- as.numeric(resid(dbt))
        put(net, "tau2_within", "", dbt$tau2)
        put(net, "q_between_random", "",
            max(0, sum(rc * (m_inv %*% rc)) - sum(ri * (m_inv %*% ri))))
      }
    } else {
      put(net, "tau2_within", "", 0)
      put(net, "q_between_random", "", fe$QE)
    }
  }
  cat(sprintf("  Q = %.3f on %d df; within designs %.3f; between designs %.3f\n", fe$QE,
              fe$k - fe$p, q_within, fe$QE - q_within))
  # direct pools with the network's tau^2, over every pair of arms a trial randomised. A
  # two-arm trial's contrast has variance v + tau^2. A multi-arm trial's arms are its common
  # arm and its contrasts' treatments; the variance of arms i vs j is (v_i + v_j - 2 cov)
  # from V, plus tau^2, and Ruecker's method (Res Synth Methods 2012;3:312-24; netmeta's
  # netsplit) turns them into independent pairs: with R those variances (0 on the diagonal)
  # and C = I - J/a, Lt = -C R C / 2, L = (Lt + J/a)^-1 - J/a its pseudo-inverse, and pair
  # ij has weight -L[i, j], so variance -1/L[i, j] (a pair of weight <= 0 is left out).
  # A pair is named "later|earlier" alphabetically.
  pa <- data.frame(treat = character(0), control = character(0), yi = numeric(0),
                   vi = numeric(0))
  for (st in unique(d$study)) {
    s <- which(d$study == st)
    if (length(s) == 1) {
      pa <- rbind(pa, data.frame(treat = d$treat[s], control = d$control[s], yi = d$yi[s],
                                 vi = V[s, s] + re$tau2))
      next
    }
    arm <- c(d$control[s[1]], d$treat[s])
    ya <- c(0, d$yi[s])
    va <- matrix(0, length(arm), length(arm))
    va[-1, -1] <- V[s, s]
    a <- length(arm)
    r <- outer(diag(va), diag(va), "+") - 2 * va + re$tau2
    diag(r) <- 0
    cm <- diag(a) - matrix(1 / a, a, a)
    lt <- -cm %*% r %*% cm / 2
    lap <- solve(lt + matrix(1 / a, a, a)) - matrix(1 / a, a, a)
    for (i in 1:(a - 1)) for (j in (i + 1):a) {
      if (-lap[i, j] > 1e-9 * max(abs(lap))) {
        pa <- rbind(pa, data.frame(treat = arm[j], control = arm[i], yi = ya[j] - ya[i],
                                   vi = -1 / lap[i, j]))
      }
    }
  }
  key <- ifelse(pa$treat > pa$control, paste(pa$treat, pa$control, sep = "|"),
                paste(pa$control, pa$treat, sep = "|"))
  yk <- ifelse(pa$treat > pa$control, pa$yi, -pa$yi)
  for (k in unique(key)) {
    s <- key == k
    dp <- rma(yk[s], vi = pa$vi[s], method = "FE", test = "z")  # tau^2 is in vi
    put(net, "direct", k, dp$beta[1])
    put(net, "direct_se", k, dp$se)
  }
}
write.csv(do.call(rbind, rows), output, row.names = FALSE)
cat("\nResults written to", output, "\n")
"""


def write_network_csv(path: Path, items: Sequence[Fitted]) -> int:
    """The fitted networks' contrasts as ``mmlr-network.R`` reads them; how many networks."""
    fitted = [(net, res) for net, res, _ in items if res is not None]
    with open_out(path, what="the network export", hint=FOLDER_HINT) as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for net, res in fitted:
            for c in res.contrasts:
                writer.writerow(r_row([
                    net.key, net.label, c.study, c.treat, c.control, repr(c.log_hr),
                    repr(c.se), c.estimate_id or "", res.reference, res.method]))
    return len(fitted)


def network_export_paths(folder: Path, items: Sequence[Fitted]) -> list[Path]:
    """The files :func:`write_network_export` writes for ``items``: none when no network
    could be fitted."""
    if not any(res is not None for _, res, _ in items):
        return []
    return [folder / CSV_NAME, folder / R_NAME]


def write_network_export(folder: Path, items: Sequence[Fitted]) -> list[Path]:
    """``mmlr-network.csv`` and ``mmlr-network.R`` in ``folder``; nothing when no network
    could be fitted (logged)."""
    paths = network_export_paths(folder, items)
    if not paths:
        log.info("no network meta-analysis to export")
        return []
    csv_path, r_path = paths
    count = write_network_csv(csv_path, items)
    with open_out(r_path, what="the network export", hint=FOLDER_HINT) as fh:
        fh.write(R_SCRIPT)
    log.info("network export of %d networks written to %s", count, folder)
    return [csv_path, r_path]
