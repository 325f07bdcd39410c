"""The literature schema: allowed values, required columns, id patterns and the normalisers built on them."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from workbench import paths
from workbench.families import GRANULARITIES as GRANULARITIES  # re-exported: schema.GRANULARITIES
from workbench.families import LITERATURE_FAMILIES

FAMILIES = LITERATURE_FAMILIES
"""Families a paper can belong to: the pruning families plus survey and other (workbench.families)."""
WORKBENCH_FIELDS = ("family", "granularity", "code", "source", "incomplete", "conflict")
REQUIRED_FIELDS = ("author", "title", "year")
VENUE_FIELDS = ("booktitle", "journal")

RESULT_COLUMNS = (
    "key",
    "method",
    "model",
    "dataset",
    "baseline_top1",
    "pruned_top1",
    "delta_top1",
    "params_base",
    "params_pruned",
    "flops_base",
    "flops_pruned",
    "flops_unit",
    "flops_reduction_pct",
    "params_reduction_pct",
    "speedup",
    "source",
)
NUMERIC_COLUMNS = (
    "baseline_top1",
    "pruned_top1",
    "delta_top1",
    "params_base",
    "params_pruned",
    "flops_base",
    "flops_pruned",
    "flops_reduction_pct",
    "params_reduction_pct",
    "speedup",
)
FLOPS_UNITS = ("MACs", "FLOPs")
EXTRA_COLUMNS = (
    "granularity",
    "notes",
    "flops_unit_source",
    "flops_unit_inferred",
    "flops_unit_inferred_reason",
    "reported_in",
    "result_id",
    "counted",
)
"""Optional columns after the fixed ones. `flops_unit` is the unit the source prints and `flops_unit_source` says where
(e.g. "column header 'Flops'"); `flops_unit_inferred` is the workbench's own reading of the count, with its reason in
`flops_unit_inferred_reason`; `reported_in` is the key of the paper whose table a quoted number was read from (empty:
the method's own paper); rows sharing a `result_id` are copies of one result, and exactly one of them has
`counted` = yes (the method's own paper where it is among them)."""
COUNTED_VALUES = ("yes", "no")

# A repository named in a `source`: it must be pinned as owner/repo@commit:path, never as a bare github.com/owner/repo.
UNPINNED_REPO_RE = re.compile(r"github\.com/[\w.-]+/[\w-]+(?:\.[\w-]+)*")
PINNED_REPO_RE = re.compile(r"\b([\w.-]+/[\w.-]+)@([0-9a-f]{7,40}):(\S+?)(?=[\s,;)]|$)")

DOI_RE = re.compile(r"10\.\d{4,9}/\S+")
ARXIV_NEW_RE = re.compile(r"\d{4}\.\d{4,5}(v\d+)?")
ARXIV_OLD_RE = re.compile(r"[a-z\-]+(\.[A-Z]{2})?/\d{7}(v\d+)?")

# Spellings of data sets and models that name the same thing in a setting like "resnet56/cifar10".
_ALIASES = {"ilsvrc2012": "imagenet", "ilsvrc": "imagenet", "imagenet1k": "imagenet", "in1k": "imagenet"}


def references_path() -> Path:
    """The default references file: <literature>/references.bib."""
    return paths.literature_dir() / "references.bib"


def results_path() -> Path:
    """The default published-results file: <literature>/results.csv."""
    return paths.literature_dir() / "results.csv"


def parts_dir() -> Path:
    """The staging folder merged by `workbench lit merge`."""
    return paths.literature_dir() / "parts"


def split_list(value: object) -> list[str]:
    """'a, b ,c' -> ['a', 'b', 'c']; None/NaN/'' -> []."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def check_choices(kind: str, values: object, allowed: tuple[str, ...]) -> list[str]:
    """Return `values` as a list, or raise ValueError naming the bad ones and the accepted ones."""
    items = split_list(values)
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ValueError(f"unknown {kind} {', '.join(map(repr, bad))}; accepted: {', '.join(allowed)}")
    return items


def strip_latex(text: str) -> str:
    """Drop BibTeX braces and collapse whitespace: '{ResNet}s  for\\n x' -> 'ResNets for x'."""
    return " ".join(str(text).replace("{", "").replace("}", "").split())


def norm_title(title: object) -> str:
    """A title reduced for duplicate detection: ASCII letters and digits, lower case, single spaces."""
    text = unicodedata.normalize("NFKD", strip_latex(str(title or "")))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def norm_doi(doi: object) -> str:
    """A DOI without resolver prefix, lower case ('' if none)."""
    text = str(doi or "").strip()
    text = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:)", "", text, flags=re.I)
    return text.lower()


def norm_arxiv(eprint: object) -> str:
    """An arXiv id without 'arXiv:' prefix and version ('' if none)."""
    text = re.sub(r"^arxiv:", "", str(eprint or "").strip(), flags=re.I)
    return re.sub(r"v\d+$", "", text).lower()


def is_doi(doi: str) -> bool:
    """True if `doi` is a bare DOI like 10.1109/CVPR.2019.00447."""
    return bool(DOI_RE.fullmatch(str(doi).strip()))


def is_arxiv_id(eprint: str) -> bool:
    """True for new-style (1506.02626, 2003.03033v2) and old-style (cs/0101001) arXiv ids."""
    text = str(eprint).strip()
    return bool(ARXIV_NEW_RE.fullmatch(text) or ARXIV_OLD_RE.fullmatch(text))


def norm_name(name: object) -> str:
    """A model or data-set name for settings: 'ResNet-56' -> 'resnet56', 'ILSVRC-2012' -> 'imagenet'."""
    text = re.sub(r"[^a-z0-9]+", "", str(name or "").lower())
    return _ALIASES.get(text, text)


def setting_of(model: object, dataset: object) -> str:
    """The setting label of a result row: 'resnet56/cifar10'."""
    return f"{norm_name(model)}/{norm_name(dataset)}"


KEY_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "on",
        "of",
        "to",
        "towards",
        "toward",
        "for",
        "in",
        "via",
        "with",
        "and",
        "is",
        "are",
        "do",
        "does",
    }
)


def conventional_key(author: str, year: str, title: str) -> str:
    """The key CONVENTIONS.md prescribes: first author's last name + year + first significant title word."""
    first = re.split(r"\s+and\s+", strip_latex(author).strip(), maxsplit=1)[0]
    last = first.split(",")[0] if "," in first else (first.split() or [""])[-1]
    words = [w for w in norm_title(title).split() if w not in KEY_STOPWORDS]
    return norm_title(last).replace(" ", "") + str(year).strip() + (words[0] if words else "")
