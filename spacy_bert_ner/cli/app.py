"""`python -m spacy_bert_ner ...`: the commands that project.yml runs, and `annotate`.

The package's own input errors (`BertNERError`) and typer's usage errors are printed as one
line in one place (`OneLineErrors`), so a bad CoNLL line, a missing model or a mistyped option
never ends in a traceback. Each command imports what it runs when it runs, so `--help` and
the other commands never pay for Ray or matplotlib; the options' choices (and the service's
defaults) come from modules that import neither: `ConllScheme`, `Engine`, `TuneEngine`,
`Strategy`, `TaskFormat`, `ServeEngine`, `ServiceSettings`.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import BertNERError

# typer 0.2x vendors its own click: take click's exceptions from where typer's live.
_click_exceptions = sys.modules[typer.BadParameter.__module__]
_UsageError: type[Exception] = _click_exceptions.UsageError
# Raised for a bare `python -m spacy_bert_ner`, whose output is the help page: kept as is.
_NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except BertNERError as err:
        # One unwrapped line (wasabi wraps at 80 columns, splitting file:line from its problem).
        typer.echo(f"\u2718 {err}", err=True)
        raise typer.Exit(1) from None
    except _UsageError as err:
        if isinstance(err, _NoArgsIsHelpError):
            raise
        ctx = getattr(err, "ctx", None)
        where = f"{ctx.command_path} --help" if ctx is not None else "--help"
        message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
        typer.echo(f"\u2718 {message} (see {where})", err=True)
        raise typer.Exit(getattr(err, "exit_code", 2)) from None


class OneLineErrors(TyperGroup):
    """Every command's `BertNERError` as one line with exit code 1, and usage errors (a
    missing argument, an unknown option, a bad value) as one line with exit code 2, instead
    of a traceback or typer's usage block and framed box."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors():
            return super().invoke(ctx)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, cls=OneLineErrors)
