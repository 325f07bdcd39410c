"""Check references.bib and results.csv against the schema; each rule returns Problems, `validate` runs all."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.literature import bib, schema


@dataclass(frozen=True)
class Problem:
    """One finding: the rule broken, where (file:line key / row), and what is wrong."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: [{self.rule}] {self.message}"


class Problems(list):
    """A list of Problem with `notes`: checks that were skipped and why."""

    def __init__(self, items: Iterable[Problem] = (), notes: Iterable[str] = ()):
        super().__init__(items)
        self.notes = list(notes)

    def summary(self) -> str:
        """'0 problems' / '3 problems (2 parse, 1 doi)', plus skipped checks."""
        counts: dict[str, int] = defaultdict(int)
        for problem in self:
            counts[problem.rule] += 1
        detail = f" ({', '.join(f'{n} {rule}' for rule, n in sorted(counts.items()))})" if counts else ""
        noun = "problem" if len(self) == 1 else "problems"
        return f"{len(self)} {noun}{detail}"


RULES = (
    "parse",
    "required",
    "venue",
    "year",
    "family",
    "granularity",
    "duplicate-key",
    "duplicate-title",
    "duplicate-doi",
    "duplicate-arxiv",
    "doi",
    "arxiv",
    "source",
    "columns",
    "numeric",
    "flops-unit",
    "results-file",
    "results-key",
    "cite",
)


def _where(path: Path, entry) -> str:
    line = entry.start_line + 1 if entry.start_line is not None else "?"
    return f"{path.name}:{line} {entry.key}"


def check_parse(library, path: Path) -> list[Problem]:
    """Blocks bibtexparser could not parse (duplicate keys are reported by check_duplicates)."""
    from bibtexparser.model import DuplicateBlockKeyBlock

    out = []
    for block in library.failed_blocks:
        line = block.start_line + 1 if block.start_line is not None else "?"
        if isinstance(block, DuplicateBlockKeyBlock):
            out.append(
                Problem(
                    "duplicate-key",
                    f"{path.name}:{line} {block.key}",
                    f"key {block.key!r} is used by more than one entry",
                )
            )
        else:
            error = getattr(block, "error", None)
            reason = f"{type(error).__name__}: {error}" if error else "unparsable block"
            out.append(Problem("parse", f"{path.name}:{line}", " ".join(reason.split())))
    return out


def check_fields(library, path: Path) -> list[Problem]:
    """author, title, year present; a venue (booktitle/journal) unless the entry has an arXiv eprint or its
    `incomplete` declares the venue unverifiable; a 4-digit year; family and granularity from the allowed sets;
    a source."""
    out = []
    for entry in library.entries:
        where = _where(path, entry)
        missing = [f for f in schema.REQUIRED_FIELDS if not bib.field(entry, f)]
        if missing:
            out.append(Problem("required", where, f"missing {', '.join(missing)}"))
        if not bib.venue_of(entry) and not bib.field(entry, "eprint") and not _venue_declared_missing(entry):
            message = "no booktitle, journal or eprint, and `incomplete` does not declare the venue unverifiable"
            out.append(Problem("venue", where, message))
        year = bib.field(entry, "year")
        if year and not (year.isdigit() and len(year) == 4):
            out.append(Problem("year", where, f"year {year!r} is not a 4-digit year"))
        for name, allowed in (("family", schema.FAMILIES), ("granularity", schema.GRANULARITIES)):
            values = schema.split_list(bib.field(entry, name))
            bad = [v for v in values if v not in allowed]
            if not values:
                out.append(Problem(name, where, f"no {name}; accepted: {', '.join(allowed)}"))
            elif bad:
                out.append(Problem(name, where, f"{name} {', '.join(map(repr, bad))} not in: {', '.join(allowed)}"))
        if not bib.field(entry, "source"):
            out.append(Problem("source", where, "no source (where the facts were verified)"))
    return out


def _venue_declared_missing(entry) -> bool:
    """Whether `incomplete` owns up to the missing venue: it names venue/booktitle/journal, or eprint on @misc."""
    words = ("venue", "booktitle", "journal") + (("eprint",) if entry.entry_type.lower() == "misc" else ())
    return any(w in item.lower() for item in schema.split_list(bib.field(entry, "incomplete")) for w in words)


def check_ids(library, path: Path) -> list[Problem]:
    """DOIs look like 10.NNNN/..., arXiv ids like 1506.02626(v2) or cs/0101001."""
    out = []
    for entry in library.entries:
        doi, eprint = bib.field(entry, "doi"), bib.field(entry, "eprint")
        if doi and not schema.is_doi(doi):
            out.append(Problem("doi", _where(path, entry), f"DOI {doi!r} is not of the form 10.NNNN/suffix"))
        if eprint and not schema.is_arxiv_id(eprint):
            out.append(
                Problem(
                    "arxiv",
                    _where(path, entry),
                    f"arXiv id {eprint!r} is not of the form 1234.56789(v1) or archive/1234567",
                )
            )
    return out


def check_duplicates(library, path: Path) -> list[Problem]:
    """No two entries with the same normalised title, DOI or arXiv id."""
    out = []
    for rule, value in (
        ("duplicate-title", lambda e: schema.norm_title(bib.field(e, "title"))),
        ("duplicate-doi", lambda e: schema.norm_doi(bib.field(e, "doi"))),
        ("duplicate-arxiv", lambda e: schema.norm_arxiv(bib.field(e, "eprint"))),
    ):
        seen: dict[str, str] = {}
        for entry in library.entries:
            got = value(entry)
            if got and got in seen:
                out.append(Problem(rule, _where(path, entry), f"same {rule.split('-')[1]} as {seen[got]!r}"))
            elif got:
                seen[got] = entry.key
    return out


def check_results(path: Path, keys: set[str] | None) -> list[Problem]:
    """Columns in the required order first, numbers numeric, flops_unit known, keys in references.bib."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return [Problem("columns", path.name, f"empty file; expected columns: {', '.join(schema.RESULT_COLUMNS)}")]
    header, width = rows[0], len(schema.RESULT_COLUMNS)
    if tuple(header[:width]) != schema.RESULT_COLUMNS:
        return [
            Problem(
                "columns",
                f"{path.name}:1",
                f"columns start {', '.join(header[:width])}; expected: {', '.join(schema.RESULT_COLUMNS)}",
            )
        ]
    out = []
    index = {name: i for i, name in enumerate(header[:width])}
    for number, row in enumerate(rows[1:], start=2):
        where = f"{path.name}:{number}"
        if len(row) != len(header):
            out.append(Problem("columns", where, f"{len(row)} cells, header has {len(header)}"))
            continue
        for column in schema.NUMERIC_COLUMNS:
            value = row[index[column]].strip()
            if value and not _is_number(value):
                out.append(Problem("numeric", where, f"{column} {value!r} is not a number"))
        unit = row[index["flops_unit"]].strip()
        has_flops = any(row[index[c]].strip() for c in ("flops_base", "flops_pruned"))
        if (unit or has_flops) and unit not in schema.FLOPS_UNITS:
            out.append(Problem("flops-unit", where, f"flops_unit {unit!r} not in: {', '.join(schema.FLOPS_UNITS)}"))
        key = row[index["key"]].strip()
        if keys is not None and key not in keys:
            out.append(Problem("results-key", where, f"key {key!r} is not in references.bib"))
    return out


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_cites(cites: dict[str, str], keys: set[str]) -> list[Problem]:
    """Every {who: bib key(s)} cites at least one key, and only keys that exist in references.bib."""
    out = []
    for who, cite in sorted(cites.items()):
        wanted = schema.split_list(cite)
        if not wanted:
            out.append(Problem("cite", who, "cites no bib key"))
        out += [Problem("cite", who, f"cites {k!r}, which is not in references.bib") for k in wanted if k not in keys]
    return out


def validate(
    references: str | Path | None = None,
    results: str | Path | None = None,
    cites: dict[str, str] | Iterable[str] | None = None,
) -> Problems:
    """All checks on references.bib and results.csv; an empty result means the literature is consistent.

    Defaults: the literature folder's references.bib and the results.csv next to the references file.
    `cites` adds bib keys that must exist (a list, or {who: key(s)}): callers above the literature, such as the
    method registry's tests, pass their `cite=` values here. Checks that could not run are listed in `.notes`.
    """
    ref_path = bib.resolve(references)
    library = bib.load_library(ref_path)
    problems = Problems()
    for check in (check_parse, check_fields, check_ids, check_duplicates):
        problems += check(library, ref_path)
    keys = {entry.key for entry in library.entries}
    res_path = Path(results) if results is not None else ref_path.parent / "results.csv"
    if res_path.is_file():
        problems += check_results(res_path, keys)
    else:
        problems.append(Problem("results-file", str(res_path), "results file not found"))
    extra = cites if isinstance(cites, dict) else {f"cite {k}": k for k in cites or ()}
    problems += check_cites(extra, keys)
    return problems
