"""The `workbench` command: run notebooks, benchmarks, literature look-ups.

Building the parser imports no torch (a test checks): each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The `workbench` parser with every command (cheap: no torch, no papermill, no nbformat)."""
    from workbench import batch, bench, nbcheck
    from workbench.deploy import cli as deploy_cli
    from workbench.literature import cli as literature_cli

    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    batch.add_commands(sub)
    nbcheck.add_commands(sub)
    bench.add_commands(sub)
    _runner_cli().add_commands(sub)
    literature_cli.add_commands(sub)
    deploy_cli.add_commands(sub)
    _add_doctor(sub)
    return parser


def _runner_cli():
    """workbench/runner/cli.py, loaded by path unless workbench.runner is imported already: the package's __init__
    imports the pipeline (torch), the command-line module itself imports nothing heavy."""
    if "workbench.runner" in sys.modules:
        from workbench.runner import cli

        return cli
    name = "workbench._runner_cli"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "runner" / "cli.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor", help="list damaged records, damaged cache entries and what killed runs left; --fix removes them",
        description="Lists run records that cannot be read (they are skipped with a warning when loading), dense "
        "cache entries and kept run models that cannot be read (rebuilt when next needed), staging folders and "
        "interrupted commits left by killed `workbench run`s. With --fix: removes the damaged files, completes "
        "interrupted commits and removes the leftovers.",
    )  # fmt: skip
    p.add_argument("--fix", action="store_true", help="remove what is damaged or left over")
    p.set_defaults(handler=doctor)


def doctor(args: argparse.Namespace) -> int:
    """Print one line per problem; with --fix, repair them. Exit 1 if problems remain."""
    from workbench import batch, records
    from workbench.runner import store

    damaged = [("record", p, why) for p, why in records.damaged_records()]
    damaged += [("cache", p, why) for p, why in store.damaged_entries()]
    left = batch.leftovers()
    for kind, path, why in damaged:
        print(f"damaged {kind}: {path}: {why}")
    for stem, found in left.items():
        for path in found:
            print(f"left by a killed run{f' of {stem}' if stem else ''}: {path}")
    count = len(damaged) + sum(map(len, left.values()))
    if not count:
        print("nothing damaged, nothing left over")
        return 0
    if not args.fix:
        print(f"{count} problem(s); `workbench doctor --fix` removes them")
        return 1
    for _, path, _ in damaged:
        batch._remove(path)
    for stem, found in left.items():
        if stem:
            batch.tidy(stem)
        else:
            for path in found:
                path.unlink(missing_ok=True)
    print(f"fixed {count} problem(s): damaged files removed (rebuilt or rerun when next needed), leftovers cleared")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from workbench.batch import NotebookBusy

    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, NotebookBusy) as exc:
        print(f"workbench: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
