"""The ``prm-probe`` command line: the parser and the error policy; the verbs live in :mod:`prm_probe.commands`.

Each verb imports its heavy modules inside its handler, so ``prm-probe --help`` starts fast. A
:class:`~prm_probe.errors.PrmProbeError` becomes one line on stderr and exit status 2 (``--debug`` shows
the traceback); a verb whose optional dependencies are missing says which extra to install, in one line; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from prm_probe import __version__
from prm_probe.errors import ConfigError, PrmProbeError

EPILOG = """quick start:
  prm-probe stats sample                           overlap statistics of the packaged sample log
  prm-probe stats LOG --by group -o groups.csv     one row per group, written as CSV
  prm-probe prm sample --step 0 --group 5          one group's trie with step rewards
  prm-probe validate LOG                           check a log and list every problem
"""

#: the command modules, in the order their verbs are listed by --help.
COMMANDS = ("logs", "explore", "imports", "training", "quality", "runs", "experiments")

#: the extra that provides each optional top-level package a verb may import.
EXTRAS = {"torch": "train", "transformers": "train", "safetensors": "train", "tokenizers": "train",
          "matplotlib": "plots", "seaborn": "plots", "scipy": "plots", "tqdm": "train", "trl": "trl",
          "datasets": "trl", "peft": "lora", "gguf": "gguf", "accelerate": "gguf", "reasoning_gym": "tasks",
          "math_verify": "tasks"}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="prm-probe",
        description="Probe GRPO rollouts as a process reward model: process sets, overlap statistics and "
                    "implied step rewards (Sullivan & Koller, ICML 2026).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prm-probe {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    out = common.add_argument_group("output")
    out.add_argument("-q", "--quiet", action="store_true", help="print less; no progress bar")
    out.add_argument("-v", "--verbose", action="store_true", help="log more (INFO level)")
    out.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in COMMANDS:
        importlib.import_module(f"prm_probe.commands.{name}").register(sub, common)
    return parser


#: the packages whose presence says an extra is installed (checked before a verb that needs the extra starts).
EXTRA_MARKERS = {"train": ("torch", "transformers"), "plots": ("matplotlib", "scipy"), "trl": ("trl",)}


def check_extras(needed: Sequence[str]) -> None:
    """Refuse, before any work or output, a verb whose extras are not installed.

    Raises:
        ConfigError: one line naming the missing extras and the install command.
    """
    import importlib.util

    missing = [extra for extra in needed
               if any(importlib.util.find_spec(m) is None for m in EXTRA_MARKERS[extra])]
    if missing:
        names = ",".join(missing)
        raise ConfigError(f"this command needs the '{names}' extra{'s' if len(missing) > 1 else ''}, which "
                          f"{'are' if len(missing) > 1 else 'is'} not installed; pip install 'prm-probe[{names}]' "
                          "(or 'prm-probe[all]')")


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line message for a verb that needs an optional package that is not installed (None: not one)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (f"this command needs {top}, which is not installed; expected the '{extra}' extra; "
            f"pip install 'prm-probe[{extra}]' (or 'prm-probe[all]')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="prm-probe: %(levelname)s: %(message)s")
    try:
        check_extras(getattr(args, "extras", ()))
        return int(args.func(args))
    except PrmProbeError as exc:
        if args.debug:
            raise
        print(f"prm-probe: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None or args.debug:
            raise
        print(f"prm-probe: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `prm-probe stats LOG | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
