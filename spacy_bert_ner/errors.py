"""Errors the package raises for bad input, each worded for the user who caused it."""

from pathlib import Path


class BertNERError(ValueError):
    """Base class: the CLI prints these as one line instead of a traceback."""


class ConllFormatError(BertNERError):
    """A CoNLL line that cannot be read; names the file and the 1-based line number."""

    def __init__(self, path: Path | str, line_no: int, problem: str) -> None:
        self.path = str(path)
        self.line_no = line_no
        self.problem = problem
        super().__init__(f"{path}:{line_no}: {problem}")


class TagSchemeError(BertNERError):
    """A label map that fits none of the supported tag schemes."""


class ModelLoadError(BertNERError):
    """A model that cannot be found or is not usable as a token classifier."""
