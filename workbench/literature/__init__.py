"""The pruning literature: references.bib and results.csv loaded, validated, searched, cited, exported, merged.

Nothing is read on import; the heavy libraries (bibtexparser, citeproc, rispy, matplotlib) load on first use.
"""

from workbench.literature import plots
from workbench.literature.bib import load_references
from workbench.literature.cite import STYLES, cite, cite_all
from workbench.literature.export import export_bib
from workbench.literature.merge import Merged, merge_into, merge_parts, rewrite_results
from workbench.literature.results import comparison, for_settings, likely_copies, load_results, pareto_methods
from workbench.literature.results import disagreements as copy_disagreements
from workbench.literature.results import table as results_table
from workbench.literature.schema import FAMILIES, GRANULARITIES, RESULT_COLUMNS
from workbench.literature.search import by_family, search
from workbench.literature.stats import format_stats, stats, venue_counts
from workbench.literature.validate import Problem, Problems, validate

__all__ = [
    "FAMILIES",
    "GRANULARITIES",
    "RESULT_COLUMNS",
    "STYLES",
    "Merged",
    "Problem",
    "Problems",
    "by_family",
    "cite",
    "cite_all",
    "comparison",
    "copy_disagreements",
    "export_bib",
    "for_settings",
    "likely_copies",
    "format_stats",
    "load_references",
    "load_results",
    "merge_into",
    "merge_parts",
    "pareto_methods",
    "plots",
    "results_table",
    "rewrite_results",
    "search",
    "stats",
    "validate",
    "venue_counts",
]
