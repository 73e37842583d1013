"""``explore``: one self-contained HTML page of a log's process sets, implied step rewards and overlap."""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_probe.commands.logs import LOG_HELP
from prm_probe.errors import ConfigError


def cmd_explore(args: argparse.Namespace) -> int:
    from prm_probe import explore

    out = Path(args.output or Path(str(args.log)).name.split(".")[0] + ".html")
    if out.suffix.lower() not in (".html", ".htm"):  # before any work
        raise ConfigError(f"output '{out}' has suffix '{out.suffix}'; expected .html; rename the output")
    explorer = explore(args.log, tokenizer=args.tokenizer, max_groups=args.max_groups, prm_quality=args.prm_quality,
                       runs=args.runs)
    written = explorer.save(out)
    m = explorer.data()["meta"]
    print(f"wrote {written} ({written.stat().st_size / 1e6:.2f} MB): {len(explorer.data()['steps'])} step(s), "
          f"{m['groups_total']} groups, {m['groups_shown']} tries; {m['tokenizer']}; open it in a browser")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from prm_probe.views.explore import DEFAULT_MAX_GROUPS

    p = sub.add_parser("explore", parents=[common],
                       help="one HTML page to explore a log's process sets, implied rewards and overlap")
    p.add_argument("log", help=LOG_HELP)
    p.add_argument("-o", "--output", metavar="FILE.html", help="the page to write (default: LOG's name + .html)")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="tokenizer.json, model folder or built-in name (smollm2-135m), to show text (default: the "
                        "log's recorded tokenizer where it loads offline, else token ids)")
    p.add_argument("--max-groups", type=int, default=DEFAULT_MAX_GROUPS,
                   help=f"groups whose tries the page embeds, the most informative first (default "
                        f"{DEFAULT_MAX_GROUPS}); every group's row is always in the table")
    p.add_argument("--prm-quality", metavar="NODES.csv",
                   help="a node table of `prm-probe prm-quality -o` for this log: V beside R̂ on its nodes")
    p.add_argument("--runs", nargs="+", metavar="RUN_DIR", help="run folders to show side by side (as compare)")
    p.set_defaults(func=cmd_explore)
