"""The `workbench` command: run notebooks, benchmarks, literature look-ups."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from workbench import batch, bench, nbcheck
    from workbench.literature import cli as literature_cli
    from workbench.runner import cli as runner_cli

    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    batch.add_commands(sub)
    nbcheck.add_commands(sub)
    bench.add_commands(sub)
    runner_cli.add_commands(sub)
    literature_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
