"""Read BibTeX: a parsed library (raw or LaTeX-decoded) and references.bib as one row per entry."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from workbench.literature import schema
from workbench.literature.venues import short_venue

FRAME_COLUMNS = (
    "key",
    "entry_type",
    "author",
    "first_author",
    "title",
    "year",
    "venue",
    "venue_short",
    "doi",
    "eprint",
    "url",
    "pages",
    "family",
    "granularity",
    "code",
    "source",
    "incomplete",
    "conflict",
    "complete",
)


@contextmanager
def _quiet_parser():
    """bibtexparser logs every failed block; we report them ourselves (validate), so hush it."""
    logger = logging.getLogger("bibtexparser")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def parse_text(text: str, decoded: bool = False):
    """Parse BibTeX text into a bibtexparser Library; `decoded` turns LaTeX into Unicode and splits names."""
    import bibtexparser
    from bibtexparser import middlewares as mw

    extra = [mw.LatexDecodingMiddleware(), mw.SeparateCoAuthors(), mw.SplitNameParts()] if decoded else None
    with _quiet_parser():
        return bibtexparser.parse_string(text, append_middleware=extra)


def resolve(path: str | Path | None) -> Path:
    """`path`, or the default references.bib; FileNotFoundError names the missing file."""
    path = Path(path) if path is not None else schema.references_path()
    if not path.is_file():
        raise FileNotFoundError(f"no references file at {path}")
    return path


def load_library(path: str | Path | None = None, decoded: bool = False):
    """Parse references.bib (or `path`) into a bibtexparser Library."""
    return parse_text(resolve(path).read_text(encoding="utf-8"), decoded=decoded)


def field(entry, name: str, default: str = "") -> str:
    """An entry's field value as a stripped string ('' if absent)."""
    got = entry.fields_dict.get(name)
    return default if got is None else str(got.value).strip()


def venue_of(entry) -> str:
    """booktitle or journal, whichever the entry has ('' if neither)."""
    return next((field(entry, f) for f in schema.VENUE_FIELDS if field(entry, f)), "")


def _author_text(value) -> tuple[str, str]:
    """(all authors 'Last, First and ...', first author's last name) from a decoded author field."""
    if isinstance(value, list):  # list of NameParts after SplitNameParts
        names = [" ".join([*p.von, *p.last]) + (", " + " ".join(p.first) if p.first else "") for p in value]
        first = " ".join([*value[0].von, *value[0].last]) if value else ""
        return " and ".join(names), first
    text = schema.strip_latex(value or "")
    return text, text.split(",")[0].split(" and ")[0].strip()


def to_frame(library) -> pd.DataFrame:
    """One row per entry of a decoded library, with the columns in FRAME_COLUMNS."""
    rows = []
    for entry in library.entries:
        author_field = entry.fields_dict.get("author")
        authors, first = _author_text(author_field.value if author_field else "")
        venue = schema.strip_latex(venue_of(entry))
        incomplete = ", ".join(schema.split_list(field(entry, "incomplete")))
        rows.append(
            {
                "key": entry.key,
                "entry_type": entry.entry_type.lower(),
                "author": authors,
                "first_author": first,
                "title": schema.strip_latex(field(entry, "title")),
                "year": pd.to_numeric(field(entry, "year"), errors="coerce"),
                "venue": venue,
                "venue_short": short_venue(venue, field(entry, "eprint")),
                "doi": field(entry, "doi"),
                "eprint": field(entry, "eprint"),
                "url": field(entry, "url"),
                "pages": field(entry, "pages"),
                "family": ", ".join(schema.split_list(field(entry, "family"))),
                "granularity": ", ".join(schema.split_list(field(entry, "granularity"))),
                "code": field(entry, "code"),
                "source": field(entry, "source"),
                "incomplete": incomplete,
                "conflict": field(entry, "conflict"),
                "complete": not incomplete,
            }
        )
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    frame["year"] = frame["year"].astype("Int64")
    frame["complete"] = frame["complete"].astype(bool)
    return frame


def load_references(path: str | Path | None = None) -> pd.DataFrame:
    """references.bib (default `paths.literature_dir()/'references.bib'`) as a DataFrame, one row per entry."""
    return to_frame(load_library(path, decoded=True))


def as_frame(references: pd.DataFrame | str | Path | None) -> pd.DataFrame:
    """Accept a references DataFrame, a path, or None (the default file)."""
    return references if isinstance(references, pd.DataFrame) else load_references(references)


def write_text(entries) -> str:
    """BibTeX text for bibtexparser Entry objects: two-space indent, one blank line between entries."""
    import bibtexparser

    fmt = bibtexparser.BibtexFormat()
    fmt.indent = "  "
    fmt.block_separator = "\n"
    return bibtexparser.write_string(bibtexparser.Library(list(entries)), bibtex_format=fmt).strip() + "\n"
