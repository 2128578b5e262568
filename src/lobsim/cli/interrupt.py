"""What the command line says when Ctrl-C stops a command: one line, exit status 130.

130 is 128 + SIGINT, what a shell reports for a command a signal stopped. A
run into a ``.zarr`` store keeps every block it finished (docs/scale.md), so
its line gives the exact command that finishes it.
"""

from __future__ import annotations

import _thread
import argparse
import logging
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


@contextmanager
def quiet_interrupt() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, after turning logging off.

    While the command stops, a Dask cluster closing with a task in flight
    logs errors (and asyncio the tracebacks of tasks it dropped): none of
    them is news to someone who pressed Ctrl-C, so the one line stays alone.
    Logging stays off: the process is about to end.

    A KeyboardInterrupt raised inside a garbage-collector callback or a
    finalizer (distributed's runs at every collection) is printed as
    "Exception ignored" and lost; it is raised again instead, at the next
    line of ordinary code.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        logging.disable(logging.CRITICAL)
        raise KeyboardInterrupt

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):
            _thread.interrupt_main()  # runs handle() again, outside the callback
        else:
            hook(info)

    try:
        old = signal.signal(signal.SIGINT, handle)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        sys.unraisablehook = hook


def interrupted_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The line printed on stderr when Ctrl-C stopped ``args.command``."""
    target = next((getattr(args, k) for k in ("config", "results", "history")
                   if getattr(args, k, None)), None)
    what = f"{args.command} of {target}" if target else str(args.command)
    out = Path(args.out) if args.command == "run" and args.out else None
    if out is None or out.suffix != ".zarr":
        written = " (nothing written)" if args.command == "run" else ""
        return f"lobsim: interrupted: {what} stopped{written}"
    kept = "its last checkpoint" if args.stream else "every block finished"
    return (f"lobsim: interrupted: {what} stopped; {out} keeps {kept}; resume with: "
            f"{resume_command(_command_parser(parser, 'run'), args)}")


def resume_command(run: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``lobsim run`` with the options of ``args`` that differ from their defaults, but
    ``--force``, and ``--resume``; shell-quoted (a path may hold spaces or quotes)."""
    words = ["lobsim", "run"]
    for action in run._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:  # the config
            words.append(str(value))
        elif action.dest in ("help", "force", "resume") or value is None or value == action.default:
            continue
        elif action.nargs == 0:  # a flag (store_true)
            words.append(action.option_strings[-1])
        else:
            words += [action.option_strings[-1], str(value)]
    return shlex.join([*words, "--resume"])


def _command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    choice: argparse.ArgumentParser = sub.choices[name]
    return choice
