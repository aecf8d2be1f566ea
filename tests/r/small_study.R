# Reference values from R metafor for tests/test_small_study_metafor.py.
#
# Usage: Rscript small_study.R INPUT.csv OUTPUT.csv AUGMENTED.csv
# INPUT: one row per study: dataset, yi, sei. For every dataset, method (REML, DL, PM, FE) and
# test (knha, adhoc, z) OUTPUT has one row with
#   - the meta-regression on the standard error, rma(yi, sei, mods = ~ sei): both
#     coefficients, their SEs and p values, tau^2;
#   - Egger's test, regtest(model = "lm") (independent of method and test);
#   - trim-and-fill, trimfill(rma(...)): side and k0, and the fit of rma() with the same
#     method and test on trimfill's augmented data (metafor 3.8's trimfill reports a Wald CI
#     whatever the test; mmlr keeps the analysis' CI, see reports/small_study.py).
# AUGMENTED: the augmented data (dataset, method, test, yi, sei, fill) so the filled values
# themselves are compared.
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(args[1], stringsAsFactors = FALSE)
ctl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
out <- list()
aug <- list()
for (id in unique(dat$dataset)) {
  d <- dat[dat$dataset == id, ]
  eg <- regtest(rma(yi = d$yi, sei = d$sei, method = "FE"), model = "lm")
  for (method in c("REML", "DL", "PM", "FE")) {
    for (test in c("knha", "adhoc", "z")) {
      reg <- suppressWarnings(rma(yi = d$yi, sei = d$sei, mods = ~ d$sei, method = method,
                                  test = test, control = ctl))
      res <- suppressWarnings(rma(yi = d$yi, sei = d$sei, method = method, test = test,
                                  control = ctl))
      tf <- suppressWarnings(trimfill(res, control = ctl))
      fit <- suppressWarnings(rma(yi = tf$yi, vi = tf$vi, method = method, test = test,
                                  control = ctl))
      out[[length(out) + 1]] <- data.frame(
        dataset = id, method = method, test = test,
        reg_b0 = reg$beta[1], reg_b1 = reg$beta[2], reg_se0 = reg$se[1], reg_se1 = reg$se[2],
        reg_p1 = reg$pval[2], reg_tau2 = reg$tau2,
        egger_stat = eg$zval, egger_p = eg$pval, egger_df = eg$dfs, egger_limit = eg$est,
        egger_limit_low = eg$ci.lb, egger_limit_high = eg$ci.ub,
        tf_side = tf$side, tf_k0 = tf$k0, tf_k = fit$k, tf_estimate = as.numeric(fit$beta),
        tf_ci_low = fit$ci.lb, tf_ci_high = fit$ci.ub, tf_tau2 = fit$tau2
      )
      aug[[length(aug) + 1]] <- data.frame(dataset = id, method = method, test = test,
                                           yi = as.numeric(tf$yi), sei = sqrt(tf$vi),
                                           fill = as.integer(tf$fill))
    }
  }
}
write.csv(do.call(rbind, out), args[2], row.names = FALSE)
write.csv(do.call(rbind, aug), args[3], row.names = FALSE)
