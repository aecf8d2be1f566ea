"""What every R script mmlr exports (`mmlr export metafor`: the pooled analyses and the
networks) has in common."""

from __future__ import annotations


def r_prologue(input_csv: str, results_csv: str) -> str:
    """The lines every exported R script starts with: load metafor, read the input CSV and
    name the results file — the command-line arguments if given, else the files beside the
    script — and start an empty list of result rows."""
    return (
        "suppressMessages(library(metafor))\n"
        "args <- commandArgs(trailingOnly = TRUE)\n"
        # The folder of the script: Rscript passes it as --file=, writing a space as "~+~"
        # (a folder "My Exports" was not found); source() (RStudio's Source button) passes
        # none: the file being sourced, else the working folder.
        'script <- grep("^--file=", commandArgs(FALSE), value = TRUE)\n'
        "here <- if (length(script) > 0) {\n"
        '  dirname(gsub("~+~", " ", sub("^--file=", "", script[1]), fixed = TRUE))\n'
        "} else {\n"
        "  sourced <- tryCatch(sys.frame(1)$ofile, error = function(e) NULL)\n"
        "  if (is.null(sourced)) getwd() else dirname(sourced)\n"
        "}\n"
        f'input <- if (length(args) >= 1) args[1] else file.path(here, "{input_csv}")\n'
        f'output <- if (length(args) >= 2) args[2] else file.path(here, "{results_csv}")\n'
        "dat <- read.csv(input, stringsAsFactors = FALSE)\n"
        "rows <- list()")  # the script goes on from a new line
