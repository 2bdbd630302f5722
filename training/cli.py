"""What every command-line tool shares: its parser's style, error reporting and exit status.

Each CLI is ``main(argv=None) -> int`` over library functions, built on ``cli_parser`` and
run as ``sys.exit(run_cli(main))``. Exit status (documented once, in the README's
"CLI conventions"):

    0    success
    1    partial failure: some inputs failed, the others were processed (each failure is listed)
    2    usage or user error: bad flag, config, dataset name or file; the message says what to fix
    70   internal error: an unexpected exception (a bug; the traceback is printed)
    130  interrupted by SIGINT (Ctrl-C);  143  stopped by SIGTERM

Known user errors (``training.errors.UserError`` and its subclasses, ``SystemExit`` with a
message, missing/unreadable files, a full disk) print one line ``error: <message>`` without a
traceback; ``--debug`` or ``CLIPFORENSICS_DEBUG=1`` adds it.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from training.errors import UserError

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
DEBUG_ENV = "CLIPFORENSICS_DEBUG"
DEBUG_FLAG = "--debug"

REPO_ROOT = Path(__file__).resolve().parent.parent
# Files run by path (the design card's entry points and scripts/); everything else runs with -m.
_RUN_BY_PATH = ("training/train.py", "training/test.py", "training/infer.py")
# Errors from the environment that name their file and need no traceback to act on.
_ENVIRONMENT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.ENOTDIR,
                       errno.EISDIR, errno.EDQUOT}


def exit_for_signal(name: Optional[str]) -> int:
    """The exit status of a run stopped by the signal called ``name`` ("SIGINT" / "SIGTERM")."""
    return EXIT_SIGTERM if name == "SIGTERM" else EXIT_SIGINT


def invocation(source_file: str) -> str:
    """How the user runs the CLI defined in ``source_file``: ``python training/train.py`` for the
    entry points run by path (and scripts/*.py), ``python -m package.module`` for the rest."""
    relative = Path(source_file).resolve().relative_to(REPO_ROOT).as_posix()
    if relative in _RUN_BY_PATH or relative.startswith("scripts/"):
        return f"python {relative}"
    return "python -m " + relative[:-len(".py")].replace("/", ".")


def cli_parser(source_file: str, description: Optional[str], **kwargs) -> argparse.ArgumentParser:
    """The parser every CLI starts from: usage line as the user types it, the module docstring
    as the description (its examples kept as written), defaults shown, and ``--debug``."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    parser = argparse.ArgumentParser(prog=kwargs.pop("prog", invocation(source_file)), description=description,
                                     **kwargs)
    add_debug_flag(parser)
    return parser


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"print the full traceback of an error (or set {DEBUG_ENV}=1)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's layout and appends "(default: X)" where a flag has a real default
    that its help does not already state (as "default ..." or "(X)")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS):
            return text
        default = action.default
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        if "default" in text or f"({shown}" in text:
            return text
        return super()._get_help_string(action)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so ``finally`` blocks (temporary files) still run."""


def _raise_terminated(_signum, _frame):
    raise Terminated()


def is_user_error(error: BaseException) -> bool:
    if isinstance(error, UserError):
        return True
    if isinstance(error, (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)):
        return True  # also when raised with a message of ours (no errno)
    return isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS


def user_message(error: BaseException) -> str:
    """The message alone: a DataLoader worker's re-raised error carries the worker's traceback
    in its text; keep only its last part (the original message)."""
    text = str(error)
    if "Original Traceback (most recent call last):" in text:
        lines = text.rstrip().splitlines()
        last_frame = max((i for i, line in enumerate(lines) if line.startswith("  ")), default=-1)
        text = "\n".join(lines[last_frame + 1:])
        head, colon, rest = text.partition(": ")
        if colon and "." in head and " " not in head:  # "package.module.ErrorClass: message"
            text = rest
    return text


def debug_requested(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def run_cli(main: Callable[[Optional[List[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)`` and turn its outcome into the exit status of the convention above."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    previous_term = None
    try:
        previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        pass
    try:
        code = main(argv)
        # A main may return a result for the Python API (a report, a table); only an int is a status.
        return code if isinstance(code, int) and not isinstance(code, bool) else EXIT_OK
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # raise SystemExit("message"): a user error
            return _report(exit_, exit_.code, debug)
        return EXIT_OK if exit_.code is None else int(exit_.code)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted (SIGINT)", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("stopped (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM
    except Exception as error:  # noqa: BLE001 - the one place every CLI's errors end up
        if is_user_error(error):
            return _report(error, user_message(error), debug)
        traceback.print_exc()
        print(f"internal error ({type(error).__name__}); the traceback above shows where. Please report it "
              f"with the command line.", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        sys.stdout.flush()


def _report(error: BaseException, message: str, debug: bool) -> int:
    sys.stdout.flush()
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__)
    print(message if message.startswith("error:") else f"error: {message}", file=sys.stderr)
    return EXIT_USAGE
