"""The HTML report: figures and tables rendered from a study and its runs."""
