"""Reports: meta-analysis, analyses, forest plots, digests, mail, exports."""
