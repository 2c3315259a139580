"""Errors the package raises for bad input, each worded for the user who caused it."""

from enum import StrEnum
from numbers import Real
from pathlib import Path
from typing import TypeVar

Choice = TypeVar("Choice", bound=StrEnum)


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line and at most `limit` characters, for errors that
    quote a library's message (some list every model type transformers knows) in ours."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BertNERError(ValueError):
    """Base class: the CLI prints these as one line instead of a traceback."""


def parse_choice(choices: type[Choice], value: str, what: str) -> Choice:
    """`value` as a member of the enum `choices`, whatever its case; else a one-line error
    listing them. The CLI's typer options take the same enums, so a choice is spelt once for
    the command line and for the Python functions behind it."""
    for member in choices:
        if member.value.lower() == str(value).lower():
            return member
    raise BertNERError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")


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


def check_fraction(setting: str, value: float) -> float:
    """`value` as a float if it lies in [0, 1], else the one wording of that error."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
        raise BertNERError(f"bert_ner: {setting} must lie between 0 and 1, not {value!r}")
    return float(value)


def check_above_zero(setting: str, value: float) -> float:
    """`value` as a float if it is above 0, else the one wording of that error."""
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0.0:
        raise BertNERError(f"bert_ner: {setting} must be above 0, not {value!r}")
    return float(value)
