"""``--set PATH=VALUE``: the one option every command that reads a config takes.

The syntax is checked when the arguments are parsed (one line, exit status
2); the value is checked with the rest of the config by
:func:`lobsim.model.config.load_config` (lobsim.model.overrides).
"""

from __future__ import annotations

import argparse

from lobsim.model.config import Config, load_config
from lobsim.model.overrides import parse_path, split_assignment

SET_HELP = ("change a config field before it is validated, TOML path syntax "
            "(bonds[0].target_units=4000, bonds[ID].payment.cap=6000, simulation.seed=7); "
            "repeatable")


def assignment(text: str) -> str:
    """``PATH=VALUE`` with a well-formed path (argparse type); returned as given."""
    try:
        path, _ = split_assignment(text)
        parse_path(path)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_set_option(parser: argparse.ArgumentParser, help: str = SET_HELP) -> None:
    """``--set PATH=VALUE`` (repeatable) into ``args.overrides``."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=assignment,
                        metavar="PATH=VALUE", help=help)


def config_of(args: argparse.Namespace, option: str = "config") -> Config:
    """The config named by ``args.<option>`` with the ``--set`` overrides applied."""
    return load_config(getattr(args, option), overrides=tuple(args.overrides))
