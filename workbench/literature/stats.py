"""Counts over the literature: entries, per family, per year, complete vs incomplete, results per setting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.literature import bib, schema
from workbench.literature import results as results_mod
from workbench.literature.search import by_family


def stats(
    references: pd.DataFrame | str | Path | None = None, results: pd.DataFrame | str | Path | None = None
) -> dict[str, object]:
    """{'entries': n, 'per_family': Series, 'per_year': Series, 'complete': n, 'incomplete': n,
    'results_rows': n, 'results': n, 'per_setting': Series}; an entry with two families counts in both; a result
    quoted in several papers' tables counts once (`results`, `per_setting`), `results_rows` counts every copy.
    Results default to the results.csv beside the references file and are left out if there is none."""
    refs = bib.as_frame(references)
    out: dict[str, object] = {
        "entries": len(refs),
        "per_family": by_family(refs)["family"].value_counts().sort_index().rename("entries"),
        "per_year": refs["year"].value_counts().sort_index().rename("entries"),
        "complete": int(refs["complete"].sum()),
        "incomplete": int((~refs["complete"]).sum()),
    }
    if results is None:  # the results.csv next to the references file, if there is one
        beside = Path(references).parent if isinstance(references, (str, Path)) else schema.results_path().parent
        results = beside / "results.csv" if (beside / "results.csv").is_file() else None
    if results is not None:
        table = results_mod.with_derived(results_mod.as_frame(results))
        once = results_mod.counted(table)
        out["results_rows"] = len(table)
        out["results"] = len(once)
        out["per_setting"] = once["setting"].value_counts().sort_index().rename("results")
    return out


def format_stats(numbers: dict[str, object]) -> str:
    """The stats as plain text, one block per count."""
    lines = [f"entries: {numbers['entries']} ({numbers['complete']} complete, {numbers['incomplete']} incomplete)"]
    for name, title in (
        ("per_family", "per family"),
        ("per_year", "per year"),
        ("per_setting", "results per setting (each counted once)"),
    ):
        if name in numbers:
            lines.append(f"{title}:")
            lines += [f"  {label}: {count}" for label, count in numbers[name].items()]
    if "results_rows" in numbers:
        lines.append(f"results rows: {numbers['results_rows']} ({numbers['results']} results, each counted once)")
    return "\n".join(lines)


def venue_counts(references: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """The `n` venues (short names; 'unknown' if none) with most entries: columns venue, papers."""
    counts = references["venue_short"].replace("", "unknown").value_counts().head(n)
    return counts.rename_axis("venue").reset_index(name="papers")
