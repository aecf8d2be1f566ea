"""``mmlr export metafor``: a CSV and an R script that reproduce every stored analysis.

The CSV holds the inputs of the newest snapshot of each analysis (one row per study, with the
method and metafor ``test`` it was pooled with); the R script fits each analysis with
``rma()``, prints ``rma``/``predict``/``confint`` output and writes a results CSV with the same
fields as ``mmlr pool --json``, so a statistician can check our numbers without trusting us.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from reports.meta import METAFOR_TEST
from reports.pool import latest_results
from store.context import AppContext
from store.errors import ValidationError

log = logging.getLogger(__name__)

CSV_NAME = "mmlr-metafor.csv"
R_NAME = "mmlr-metafor.R"
CSV_COLUMNS = ("analysis", "label", "study", "estimate_id", "yi", "sei", "subgroup",
               "method", "test", "snapshot_id")

R_SCRIPT = r"""# Reproduces every pooled analysis of mmlr with R metafor.
# Usage: Rscript mmlr-metafor.R [mmlr-metafor.csv] [results.csv]
# Each analysis: rma(yi, sei=sei, method=<as stored>, test=<knha|adhoc|z>) and predict().
# hksj = test="knha", hksj-adhoc = test="adhoc", wald = test="z".
# The convergence tolerances are tightened so that tau^2 is the converged value; with
# metafor's defaults the numbers agree to about 1e-5.
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
input <- if (length(args) >= 1) args[1] else file.path(here, "mmlr-metafor.csv")
output <- if (length(args) >= 2) args[2] else file.path(here, "mmlr-metafor-results.csv")
dat <- read.csv(input, stringsAsFactors = FALSE)
rows <- list()
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
  rows[[length(rows) + 1]] <- data.frame(
    analysis = key, k = res$k, estimate = as.numeric(res$beta), se = res$se,
    ci_low = res$ci.lb, ci_high = res$ci.ub, pi_low = pi.lb, pi_high = pi.ub,
    hr = exp(as.numeric(res$beta)), hr_ci_low = exp(res$ci.lb), hr_ci_high = exp(res$ci.ub),
    tau2 = res$tau2, i2 = res$I2, q = res$QE, q_p = res$QEp)
}
write.csv(do.call(rbind, rows), output, row.names = FALSE)
cat("\nresults written to", output, "\n")
"""


def write_metafor_export(ctx: AppContext, out: Path | None = None) -> list[Path]:
    """Write ``mmlr-metafor.csv`` and ``mmlr-metafor.R`` into ``out`` (a folder; default
    ``<data dir>/exports``) and return their paths."""
    folder = Path(out) if out is not None else ctx.settings.data_dir / "exports"
    if folder.exists() and not folder.is_dir():
        raise ValidationError(f"{folder} is a file; `mmlr export metafor --out` takes a folder")
    with ctx.sessions() as session:
        snapshots = [s for s in latest_results(session) if s.k > 0]
    if not snapshots:
        raise ValidationError("no pooled analyses to export", hint="run `mmlr pool` first")
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, r_path = folder / CSV_NAME, folder / R_NAME
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for snap in snapshots:
            test = METAFOR_TEST[snap.settings.get("ci", snap.ci_method)]
            for row in snap.inputs:
                writer.writerow([snap.analysis_key, snap.analysis_label, row["trial"],
                                 row["estimate_id"], repr(float(row["yi"])),
                                 repr(float(row["sei"])), row.get("subgroup") or "",
                                 snap.method, test, snap.id])
    r_path.write_text(R_SCRIPT, encoding="utf-8")
    log.info("metafor export of %d analyses written to %s", len(snapshots), folder)
    return [csv_path, r_path]
