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
    "flops-unit-source",
    "flops-unit-inferred",
    "delta",
    "reported-in",
    "result-copies",
    "counted-copy",
    "unlinked-copy",
    "unpinned-source",
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
        out += [Problem("unpinned-source", where, message) for message in unpinned(bib.field(entry, "source"))]
    return out


def unpinned(source: str) -> list[str]:
    """A message for every repository a `source` names without a commit (github.com/owner/repo ...)."""
    return [
        f"repository source {m.group(0)!r} has no commit; write owner/repo@commit:path"
        for m in schema.UNPINNED_REPO_RE.finditer(str(source or ""))
    ]


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
        cell = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        unit = cell["flops_unit"]
        has_flops = any(cell[c] for c in ("flops_base", "flops_pruned"))
        if (unit or has_flops) and unit not in schema.FLOPS_UNITS:
            out.append(Problem("flops-unit", where, f"flops_unit {unit!r} not in: {', '.join(schema.FLOPS_UNITS)}"))
        if unit in schema.FLOPS_UNITS and not _names_unit(cell.get("flops_unit_source", ""), unit):
            message = f"flops_unit {unit!r} without a flops_unit_source naming it (where the source prints the unit)"
            out.append(Problem("flops-unit-source", where, message))
        inferred, reason = cell.get("flops_unit_inferred", ""), cell.get("flops_unit_inferred_reason", "")
        if inferred and (inferred not in schema.FLOPS_UNITS or not reason):
            out.append(
                Problem("flops-unit-inferred", where, f"flops_unit_inferred {inferred!r} needs a unit and a reason")
            )
        base, pruned, delta = (_float(cell[c]) for c in ("baseline_top1", "pruned_top1", "delta_top1"))
        if None not in (base, pruned, delta) and abs(delta - (pruned - base)) > DELTA_TOLERANCE:
            message = f"delta_top1 {delta:g} but pruned - baseline = {pruned - base:.4g}"
            out.append(Problem("delta", where, message))
        key = cell["key"]
        if keys is not None and key not in keys:
            out.append(Problem("results-key", where, f"key {key!r} is not in references.bib"))
        reported = cell.get("reported_in", "")
        if reported and keys is not None and reported not in keys:
            out.append(Problem("reported-in", where, f"reported_in {reported!r} is not in references.bib"))
        out += [Problem("unpinned-source", where, message) for message in unpinned(cell["source"])]
    if not out or all(p.rule not in ("columns", "numeric") for p in out):
        out += check_copies(path)
    return out


DELTA_TOLERANCE = 0.011  # percentage points: both accuracies and the delta rounded to two decimals


def _float(text: str) -> float | None:
    try:
        return float(text) if text.strip() else None
    except ValueError:
        return None


def _names_unit(text: str, unit: str) -> bool:
    """Whether a flops_unit_source text shows the unit: 'FLOPs' is named by FLOPs/Flops/FLOPS, 'MACs' by MACs/MAC."""
    stem = {"FLOPs": "flop", "MACs": "mac"}[unit]
    return stem in text.lower()


def check_copies(path: Path) -> list[Problem]:
    """Copies of one result share a result_id with exactly one counted row, the method's own where it is among them
    (reported_in empty); rows that look like the same result (see results.likely_copies) must be linked that way."""
    from workbench.literature import results as results_mod

    frame = results_mod.load_results(path)
    out = []
    if "result_id" not in frame.columns:
        frame["result_id"] = ""
    ids = frame["result_id"].fillna("").astype(str)
    counted = frame["counted"].fillna("").astype(str) if "counted" in frame.columns else ids.map(lambda _: "")
    quoted = frame["reported_in"].fillna("").astype(str) if "reported_in" in frame.columns else ids.map(lambda _: "")
    own = quoted.str.strip() == ""  # the method's own paper or repository
    for value in sorted(set(counted) - {"", *schema.COUNTED_VALUES}):
        rows = ", ".join(str(i + 2) for i in frame.index[counted == value])
        out.append(Problem("result-copies", f"{path.name}:{rows}", f"counted {value!r} not in: yes, no"))
    for result_id, group in frame[ids != ""].groupby(ids[ids != ""]):
        where = f"{path.name}:{','.join(str(i + 2) for i in group.index)} {result_id}"
        settings = {schema.setting_of(m, d) for m, d in zip(group["model"], group["dataset"], strict=True)}
        if group["key"].nunique() > 1 or len(settings) > 1:
            out.append(Problem("result-copies", where, "copies of one result name different papers or settings"))
        n_counted = int((counted[group.index] != "no").sum())
        if n_counted != 1:
            out.append(Problem("result-copies", where, f"{n_counted} copies counted; exactly one must be"))
        elif own[group.index].any() and not own[group.index][counted[group.index] != "no"].all():
            out.append(Problem("counted-copy", where, "a quoted copy is counted although the method's own is here"))
    for a, b in results_mod.likely_copies(frame):
        if not ids[a] or ids[a] != ids[b]:
            row_a, row_b = frame.loc[a], frame.loc[b]
            message = (
                f"rows {a + 2} and {b + 2} look like one result ({row_a['key']} {row_a['method']!s} "
                f"{row_a['pruned_top1']:g} / {row_b['method']!s} {row_b['pruned_top1']:g}) but share no result_id"
            )
            out.append(Problem("unlinked-copy", f"{path.name}:{a + 2}", message))
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
