"""Filter the references: free text, family, granularity, years, venue."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.literature import bib, schema

TEXT_COLUMNS = ("key", "title", "author", "venue", "venue_short")


def _has_any(cell: str, wanted: list[str]) -> bool:
    return bool(set(schema.split_list(cell)) & set(wanted))


def search(
    text: str | None = None,
    family: str | list[str] | None = None,
    granularity: str | list[str] | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
    venue: str | None = None,
    references: pd.DataFrame | str | Path | None = None,
) -> pd.DataFrame:
    """Entries matching every filter given, sorted by year then key.

    `text`: every word occurs (case-insensitive) in key, title, authors or venue. `family`/`granularity`: one
    value or a list (comma-separated also works); an entry matches if it has any of them. `venue`: a
    case-insensitive substring of the venue or its short name. Years are inclusive.
    """
    frame = bib.as_frame(references)
    families = schema.check_choices("family", family, schema.FAMILIES)
    granularities = schema.check_choices("granularity", granularity, schema.GRANULARITIES)
    if year_from is not None and year_to is not None and int(year_from) > int(year_to):
        raise ValueError(f"year_from {year_from} is after year_to {year_to}")
    keep = pd.Series(True, index=frame.index)
    if text:
        haystack = frame[list(TEXT_COLUMNS)].fillna("").astype(str).agg(" ".join, axis=1).str.lower()
        for word in str(text).lower().split():
            keep &= haystack.str.contains(word, regex=False)
    if families:
        keep &= frame["family"].map(lambda cell: _has_any(cell, families))
    if granularities:
        keep &= frame["granularity"].map(lambda cell: _has_any(cell, granularities))
    if year_from is not None:
        keep &= (frame["year"] >= int(year_from)).fillna(False)
    if year_to is not None:
        keep &= (frame["year"] <= int(year_to)).fillna(False)
    if venue:
        needle = str(venue).lower()
        keep &= frame["venue"].str.lower().str.contains(needle, regex=False) | frame[
            "venue_short"
        ].str.lower().str.contains(needle, regex=False)
    return frame[keep.astype(bool)].sort_values(["year", "key"], kind="stable").reset_index(drop=True)


def by_family(references: pd.DataFrame, primary: bool = False) -> pd.DataFrame:
    """One row per (entry, family); `primary=True` keeps only the first family listed, so rows = entries."""
    frame = references.assign(family=references["family"].map(schema.split_list))
    if primary:
        frame["family"] = frame["family"].map(lambda fams: fams[0] if fams else "unclassified")
        return frame
    frame["family"] = frame["family"].map(lambda fams: fams or ["unclassified"])
    return frame.explode("family", ignore_index=True)
