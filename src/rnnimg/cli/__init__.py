"""The ``rnnimg`` command line. Thin: it parses arguments, calls the library and prints results.

A user mistake (an :class:`~rnnimg.errors.RnnImgError`) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from rnnimg.cli import generate_cmds, image_cmds, predict_cmd, reconstruct_cmd, serve_cmd, train_cmds
from rnnimg.errors import InputError, RnnImgError

COMMAND_MODULES = [train_cmds, generate_cmds, predict_cmd, image_cmds, reconstruct_cmd, serve_cmd]


def build_parser() -> argparse.ArgumentParser:
    from rnnimg import __version__

    parser = argparse.ArgumentParser(
        prog="rnnimg",
        description="Generate images with recurrent neural networks: train a model, sample from "
                    "it, complete occluded images, predict the next frames of a clip.",
        epilog="Run `rnnimg COMMAND --help` for a command's options. Start with `rnnimg demo`.",
    )
    parser.add_argument("--version", action="version", version=f"rnnimg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for command in sub.choices.values():  # the flag of each argument, for InputError's messages
        # (argparse lists a parser's arguments only in _actions, unchanged since Python 3.2)
        command.set_defaults(option_flags={a.dest: "/".join(a.option_strings)
                                           for a in command._actions if a.option_strings})
    return parser


def flag_of(args: argparse.Namespace, argument: str) -> str:
    """What the command line calls the library's ``argument``: a name the command gave it
    (``args.argument_flags``: ``known`` is ``--mask``, an image is the INPUT file), else the flag
    of the same name (``seed`` is ``--seed``, ``samples`` is ``-n/--samples``), else itself."""
    named = getattr(args, "argument_flags", None) or {}
    return named.get(argument) or (getattr(args, "option_flags", None) or {}).get(argument) or argument


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rnnimg.cli.common import quiet_libraries

    quiet_libraries()
    _one_line_warnings()
    try:
        return int(args.run(args) or 0)
    except InputError as err:  # an inference argument: name its flag
        print(f"rnnimg: error: {err.naming(flag_of(args, err.argument))}", file=sys.stderr)
        return 2
    except RnnImgError as err:
        print(f"rnnimg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnimg: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a read-only folder: one line (writes are atomic)
        from rnnimg.cli.common import os_error_line

        print(f"rnnimg: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # the verbs name the size; this is the backstop
        from rnnimg.cli.common import is_out_of_memory

        if not is_out_of_memory(err):
            raise
        print(f"rnnimg: error: ran out of memory in `rnnimg {args.command}`; pass smaller inputs "
              "(a smaller image, -n or --batch-size).", file=sys.stderr)
        return 2


def _one_line_warnings() -> None:
    """rnnimg's own warnings (RnnImgWarning) as one line each, like its errors."""
    import warnings

    from rnnimg.errors import RnnImgWarning

    if getattr(warnings.formatwarning, "rnnimg", False):
        return
    plain = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, RnnImgWarning):
            return f"rnnimg: warning: {message}\n"
        return plain(message, category, filename, lineno, line)

    formatwarning.rnnimg = True
    warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
