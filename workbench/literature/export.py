"""Write a subset of references.bib (chosen by keys or by search filters) as a .bib file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from workbench.literature import bib
from workbench.literature.cite import find_entry
from workbench.literature.fileio import write_atomic
from workbench.literature.search import search


def select_keys(
    selection: Iterable[str] | dict | pd.DataFrame | str, references: str | Path | None = None
) -> list[str]:
    """Keys named by `selection`: one key, a list of keys, a DataFrame with a `key` column, or a dict of
    `search()` filters (e.g. {"family": "lottery-ticket", "year_from": 2019})."""
    if isinstance(selection, dict):
        return list(search(**selection, references=references)["key"])
    if isinstance(selection, pd.DataFrame):
        return list(selection["key"])
    if isinstance(selection, str):
        return [selection]
    return list(selection)


def export_bib(
    selection: Iterable[str] | dict | pd.DataFrame | str, path: str | Path, references: str | Path | None = None
) -> list[str]:
    """Write the selected entries, with all their fields, to `path` (atomically); return their keys.

    An unknown key raises ValueError with the closest known keys; an empty selection raises ValueError.
    """
    keys = list(dict.fromkeys(select_keys(selection, references)))
    if not keys:
        raise ValueError(f"nothing to export: the selection {selection!r} matches no entries")
    library = bib.load_library(references)
    write_atomic(path, bib.write_text(find_entry(library, key) for key in keys))
    return keys
