# Reference values from R metafor for tests/test_meta_metafor.py.
#
# Usage: Rscript oracle.R INPUT.csv OUTPUT.csv
# INPUT: one row per study: dataset, yi, sei. Every dataset is fitted with every method
# (REML, DL, PM, FE) and every test (knha, adhoc, z); OUTPUT has one row per fit.
#
# The iteration tolerances are tightened (threshold/tol 1e-12) so that metafor reports the
# converged tau^2 rather than its default stopping point (1e-5 for Fisher scoring,
# .Machine$double.eps^0.25 for uniroot): we compare solutions, not stopping rules.
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(args[1], stringsAsFactors = FALSE)
out <- list()
num <- function(x) if (is.null(x) || length(x) == 0) NA_real_ else as.numeric(x)[1]
for (id in unique(dat$dataset)) {
  d <- dat[dat$dataset == id, ]
  for (method in c("REML", "DL", "PM", "FE")) {
    for (test in c("knha", "adhoc", "z")) {
      res <- suppressWarnings(rma(yi = d$yi, sei = d$sei, method = method, test = test,
                                  control = list(threshold = 1e-12, tol = 1e-12,
                                                 maxiter = 10000)))
      pr <- predict(res)
      lb <- NA_real_
      ub <- NA_real_
      if (method != "FE" && res$k > 1) {
        ci <- try(suppressWarnings(confint(res, control = list(tol = 1e-12))), silent = TRUE)
        if (!inherits(ci, "try-error")) {
          lb <- ci$random["tau^2", "ci.lb"]
          ub <- ci$random["tau^2", "ci.ub"]
        }
      }
      out[[length(out) + 1]] <- data.frame(
        dataset = id, method = method, test = test, k = res$k,
        estimate = num(res$beta), se = num(res$se), ci_low = num(res$ci.lb),
        ci_high = num(res$ci.ub), pval = num(res$pval), tau2 = num(res$tau2),
        i2 = num(res$I2), h2 = num(res$H2), q = num(res$QE), q_p = num(res$QEp),
        pi_low = num(pr$pi.lb), pi_high = num(pr$pi.ub), tau2_ci_low = lb, tau2_ci_high = ub
      )
    }
  }
}
write.csv(do.call(rbind, out), args[2], row.names = FALSE)
