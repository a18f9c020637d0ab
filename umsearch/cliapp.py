"""The frame of the `umsearch` command: help that speaks in words, not Python types, and usage errors as one line.

Typer builds the commands from cli.py's functions; the classes here only change how they present themselves:
- an option's value is named for the reader (`--db PATH`, `--limit N`), never `<list[Path]>` or `<int range>`;
- a command's description is shown whole in the command list (wrapped, not cut with "...");
- `-h` works like `--help`, and `--version` prints the version;
- a command line that cannot be understood (`--limit 0`, `--threshold 1.5`, an unknown option) prints one line,
  `error: ...`, and exits with status 2 (cli.EXIT_USAGE), the code every click/typer program uses for it.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # recent typer carries its own copy of click: its exceptions are the ones raised
    from typer import _click as click
except ImportError:  # older typer runs on click itself
    import click  # type: ignore[no-redef]

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def value_name(param: click.Parameter, ctx: click.Context) -> str:
    """What a reader calls an option's value: PATH, N, X or TEXT (a list of them for repeatable options)."""
    describe = getattr(param, "display_type", None)  # typer's: "<list[Path]>", "<int range>"; click's: type names
    shown = str(describe(ctx) if describe is not None else getattr(getattr(param, "type", None), "name", "")).lower()
    if "path" in shown:
        return "PATH"
    if "int" in shown:
        return "N"
    if "float" in shown:
        return "X"
    return "TEXT"


def _name_values(command: click.Command, ctx: click.Context) -> None:
    """Give every option and argument without an explicit metavar a plain one (once per command)."""
    for param in command.params:
        if param.metavar is not None or getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        if param.param_type_name == "argument":
            param.metavar = (param.name or "VALUE").upper()
        else:
            param.metavar = value_name(param, ctx)


def _first_paragraph(text: str | None) -> str:
    """A command's description for the command list: its first paragraph, whole (the list wraps it)."""
    if not text:
        return ""
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


class Command(TyperCommand):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        _name_values(self, ctx)
        return super().get_params(ctx)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """`umsearch index [OPTIONS] PATHS...`: arguments by name, as people write them in manuals."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or (param.name or "").upper()
                piece = name if param.required else f"[{name}]"
                pieces.append(piece + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Arguments and options, each named by its metavar alone (typer would add `<list[Path]>`)."""
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name = (param.metavar or "") + ("..." if param.nargs != 1 else "")
                arguments.append((name, record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _first_paragraph(self.help)


class Group(TyperGroup):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        _name_values(self, ctx)
        return super().get_params(ctx)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _first_paragraph(self.help)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; a command line that cannot be understood is one line and exit status 2."""
        run = functools.partial(
            super().main, args, prog_name, complete_var, windows_expand_args=windows_expand_args, **extra
        )
        if not standalone_mode:
            return run(standalone_mode=False)
        try:
            result = run(standalone_mode=False)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", file=sys.stdout)
            sys.exit(0)
        except click.exceptions.ClickException as exc:
            _print_usage_error(exc)
            sys.exit(exc.exit_code)
        except typer.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        # In non-standalone mode an explicit exit comes back as its code (commands themselves return None).
        sys.exit(result if isinstance(result, int) else 0)


def _print_usage_error(exc: click.exceptions.ClickException) -> None:
    from . import present

    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.exceptions.UsageError) and ctx is not None:
        message = f"{message} (see '{ctx.command_path} --help')"
    present.error(" ".join(message.split()))


class App(typer.Typer):
    """typer.Typer whose commands and groups present themselves as described in this module."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        kwargs.setdefault("context_settings", HELP_OPTIONS)
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Callable[[Any], Any]:
        return super().command(*args, cls=cls or Command, **kwargs)


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"umsearch {version('umsearch')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "umsearch (not installed)"


def show_version(value: bool) -> None:
    """The eager `--version` option: print and stop before any command runs."""
    if value:
        sys.stdout.write(version_text() + "\n")
        raise typer.Exit(0)
