"""`workbench cite ...` and `workbench lit search|validate|stats|export|merge`: handlers return exit codes."""

from __future__ import annotations

import argparse

from workbench.literature import schema

STYLE_CHOICES = ("harvard", "apa", "ieee", "bibtex", "ris")


def cmd_cite(args: argparse.Namespace) -> int:
    """Print the KEYs in the chosen style (one bibliography; BibTeX/RIS records separated by blank lines)."""
    from workbench.literature.cite import cite_all

    print(cite_all(args.keys, args.style, args.references), end="")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the matching entries (key, year, venue, title) and their number."""
    import pandas as pd

    from workbench.literature.search import search

    found = search(
        args.text,
        family=args.family,
        granularity=args.granularity,
        year_from=args.year_from,
        year_to=args.year_to,
        venue=args.venue,
        references=args.references,
    )
    if len(found):
        with pd.option_context("display.max_colwidth", 80, "display.width", 200):
            print(found[["key", "year", "venue_short", "title"]].to_string(index=False))
    print(f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Print each problem on one line, then notes and a summary; exit 1 if there is any problem."""
    from workbench.literature.validate import validate

    problems = validate(args.references, args.results)
    for problem in problems:
        print(problem)
    for note in problems.notes:
        print(f"note: {note}")
    print(problems.summary())
    return 1 if problems else 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Print entry counts (total, per family, per year, complete/incomplete) and results rows per setting."""
    from workbench.literature.stats import format_stats, stats

    print(format_stats(stats(args.references, args.results)))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """Print one setting's published results, each counted once, sorted; an unknown setting lists the known ones."""
    import pandas as pd

    from workbench.literature import results as results_mod

    table = results_mod.load_results(args.results)
    try:
        frame = results_mod.comparison(
            table, args.setting, sort=args.sort, family=args.family, references=args.references
        )
    except KeyError as error:
        print(error.args[0])
        return 2
    with pd.option_context("display.max_colwidth", 40, "display.width", 250, "display.max_rows", None):
        print(frame.to_string(index=False, na_rep="-") if len(frame) else "(no results match)")
    quoted = int((frame["reported_in"].fillna("") != "").sum()) if len(frame) else 0
    print(
        f"{len(frame)} results for {args.setting} (each counted once; {quoted} read from another paper's table, "
        "named in reported_in; copies = rows of results.csv holding the same result)"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the entries chosen by --key or by the filters to --out; print how many."""
    from workbench.literature.export import export_bib

    if args.key and any(v is not None for v in (args.family, args.granularity, args.year_from, args.year_to)):
        raise ValueError("give either --key or filters (--family, --granularity, --year-from, --year-to), not both")
    selection = args.key or {
        "family": args.family,
        "granularity": args.granularity,
        "year_from": args.year_from,
        "year_to": args.year_to,
    }
    keys = export_bib(selection, args.out, references=args.references)
    print(f"wrote {len(keys)} entries to {args.out}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge --parts into --out/references.bib and --out/results.csv; print what was merged."""
    from workbench.literature.merge import merge_into

    for note in merge_into(args.parts, args.out):
        print(note)
    return 0


def _files(parser: argparse.ArgumentParser, results: bool = True) -> None:
    parser.add_argument(
        "--references", metavar="BIB", default=None, help="references file (default: literature/references.bib)"
    )
    if results:
        parser.add_argument(
            "--results", metavar="CSV", default=None, help="results file (default: results.csv beside the references)"
        )


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", default=None, help=f"one or more, comma-separated: {', '.join(schema.FAMILIES)}")
    parser.add_argument(
        "--granularity", default=None, help=f"one or more, comma-separated: {', '.join(schema.GRANULARITIES)}"
    )
    parser.add_argument("--year-from", type=int, default=None, metavar="Y")
    parser.add_argument("--year-to", type=int, default=None, metavar="Y")


def add_commands(subparsers) -> None:
    """Add `cite` and `lit` (search, validate, stats, export, merge) to the workbench subparsers."""
    cite = subparsers.add_parser("cite", help="format references in a citation style")
    cite.add_argument("keys", nargs="+", metavar="KEY")
    cite.add_argument("--style", choices=STYLE_CHOICES, default="harvard")
    _files(cite, results=False)
    cite.set_defaults(handler=cmd_cite)

    lit = subparsers.add_parser("lit", help="the pruning literature: search, validate, stats, results, export, merge")
    sub = lit.add_subparsers(dest="lit_command", required=True)

    search = sub.add_parser("search", help="find entries by text and filters")
    search.add_argument("text", nargs="?", default=None, metavar="TEXT", help="words that must all occur")
    _filters(search)
    search.add_argument("--venue", default=None, help="substring of the venue or its short name")
    _files(search, results=False)
    search.set_defaults(handler=cmd_search)

    validate = sub.add_parser("validate", help="check references.bib and results.csv; exit 1 on problems")
    _files(validate)
    validate.set_defaults(handler=cmd_validate)

    stats = sub.add_parser("stats", help="entries per family and year, results per setting")
    _files(stats)
    stats.set_defaults(handler=cmd_stats)

    results = sub.add_parser("results", help="one setting's published results as a comparison table")
    results.add_argument("--setting", required=True, help="model/data set, e.g. resnet56/cifar10")
    results.add_argument("--sort", default="delta_top1", help="column to sort by (default delta_top1, best first)")
    results.add_argument("--family", default=None, help=f"keep papers of these families: {', '.join(schema.FAMILIES)}")
    _files(results)
    results.set_defaults(handler=cmd_results)

    export = sub.add_parser("export", help="write a filtered subset as a .bib file")
    export.add_argument("--key", action="append", default=[], help="a key to export (repeatable)")
    _filters(export)
    export.add_argument("--out", required=True, metavar="FILE")
    _files(export, results=False)
    export.set_defaults(handler=cmd_export)

    merge = sub.add_parser("merge", help="merge literature/parts/*.bib and results*.csv into literature/")
    merge.add_argument("--parts", default=None, help="staging folder (default: literature/parts)")
    merge.add_argument("--out", default=None, help="output folder (default: literature)")
    merge.set_defaults(handler=cmd_merge)
