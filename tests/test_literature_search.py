"""Loading, search filters, export round trip, stats, results dtypes and derived columns, plots."""

import bibtexparser
import matplotlib
import pandas as pd
import pytest

from workbench import literature
from workbench.literature import load_references, load_results, search

matplotlib.use("Agg")

BIB = r"""@inproceedings{doe2019alpha,
  author = {Doe, Jane and Roe, Richard},
  title = {Alpha Pruning of {Fixture} Networks},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2019},
  doi = {10.1234/fixture.2019.001},
  family = {magnitude, sensitivity},
  granularity = {weight},
  source = {test fixture}
}

@misc{poe2020beta,
  author = {P{\"o}e, Edgar},
  title = {Beta Tickets in Fixture Networks},
  year = {2020},
  eprint = {2001.01234},
  archiveprefix = {arXiv},
  family = {lottery-ticket},
  granularity = {weight, filter},
  source = {test fixture},
  incomplete = {doi}
}

@article{moe2021gamma,
  author = {Moe, Mo},
  title = {Gamma Channels},
  journal = {Journal of Fixtures},
  year = {2021},
  family = {filter-ranking, magnitude},
  granularity = {channel},
  code = {https://github.com/example/gamma},
  source = {test fixture}
}
"""
CSV = """key,method,model,dataset,baseline_top1,pruned_top1,delta_top1,params_base,params_pruned,flops_base,\
flops_pruned,flops_unit,flops_reduction_pct,params_reduction_pct,speedup,source
doe2019alpha,Alpha,ResNet-56,CIFAR-10,93.0,92.8,,0.85e6,0.5e6,125e6,60e6,MACs,,,,t1
poe2020beta,Beta,ResNet56,cifar10,93.2,93.4,,,,,,,40,,,t2
moe2021gamma,Gamma,ResNet-56,CIFAR-10,93.1,92.0,-1.1,,,,,,70,,,t3
moe2021gamma,Gamma,ResNet-50,ILSVRC-2012,76.1,75.0,-1.1,25.6e6,15e6,4.1e9,2.0e9,FLOPs,,,1.8,t3
"""


@pytest.fixture
def lit(tmp_path):
    (tmp_path / "references.bib").write_text(BIB, encoding="utf-8")
    (tmp_path / "results.csv").write_text(CSV, encoding="utf-8")
    return tmp_path


def keys(frame):
    return list(frame["key"])


def test_load_references_decodes_and_types(lit):
    refs = load_references(lit / "references.bib")
    assert keys(refs) == ["doe2019alpha", "poe2020beta", "moe2021gamma"]
    assert str(refs["year"].dtype) == "Int64"
    row = refs.set_index("key").loc["poe2020beta"]
    assert row["first_author"] == "Pöe" and row["venue_short"] == "arXiv" and not row["complete"]
    assert refs.set_index("key").loc["doe2019alpha", "title"] == "Alpha Pruning of Fixture Networks"
    assert refs.set_index("key").loc["doe2019alpha", "venue_short"] == "NeurIPS"


def test_default_paths_come_from_workbench_paths(lit, monkeypatch):
    (lit / "literature").mkdir()
    for name in ("references.bib", "results.csv"):
        (lit / name).rename(lit / "literature" / name)
    monkeypatch.setenv("WORKBENCH_ROOT", str(lit))
    assert len(load_references()) == 3 and len(load_results()) == 4


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["doe2019alpha", "poe2020beta", "moe2021gamma"]),
        ({"text": "fixture networks"}, ["doe2019alpha", "poe2020beta"]),
        ({"text": "pöe"}, ["poe2020beta"]),
        ({"family": "magnitude"}, ["doe2019alpha", "moe2021gamma"]),
        ({"family": ["lottery-ticket", "sensitivity"]}, ["doe2019alpha", "poe2020beta"]),
        ({"granularity": "filter"}, ["poe2020beta"]),
        ({"year_from": 2020}, ["poe2020beta", "moe2021gamma"]),
        ({"year_from": 2019, "year_to": 2020}, ["doe2019alpha", "poe2020beta"]),
        ({"venue": "neurips"}, ["doe2019alpha"]),
        ({"venue": "fixtures", "family": "magnitude"}, ["moe2021gamma"]),
    ],
)
def test_search_filters(lit, filters, expected):
    assert keys(search(references=lit / "references.bib", **filters)) == expected


def test_search_accepts_a_loaded_frame(lit):
    refs = load_references(lit / "references.bib")
    assert keys(search("gamma", references=refs)) == ["moe2021gamma"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"family": "pruning"}, r"unknown family 'pruning'; accepted: magnitude, filter-ranking"),
        ({"granularity": "neuron"}, r"unknown granularity 'neuron'; accepted: weight, filter"),
        ({"year_from": 2021, "year_to": 2019}, r"year_from 2021 is after year_to 2019"),
    ],
)
def test_search_rejects_bad_filters(lit, filters, message):
    with pytest.raises(ValueError, match=message):
        search(references=lit / "references.bib", **filters)


@pytest.mark.parametrize(
    "selection",
    [
        ["moe2021gamma", "doe2019alpha"],
        {"family": "magnitude"},
        "frame",
    ],
)
def test_export_round_trips(lit, tmp_path, selection):
    if selection == "frame":
        selection = search(family="magnitude", references=lit / "references.bib")
    out = tmp_path / "out" / "subset.bib"
    written = literature.export_bib(selection, out, references=lit / "references.bib")
    original = {e.key: e for e in bibtexparser.parse_string(BIB).entries}
    exported = bibtexparser.parse_string(out.read_text(encoding="utf-8"))
    assert not exported.failed_blocks
    assert sorted(e.key for e in exported.entries) == sorted(written) == ["doe2019alpha", "moe2021gamma"]
    for e in exported.entries:
        assert e.entry_type == original[e.key].entry_type
        assert {f.key: f.value for f in e.fields} == {f.key: f.value for f in original[e.key].fields}


def test_export_errors(lit, tmp_path):
    with pytest.raises(ValueError, match="'doe2019alpa'; closest: doe2019alpha"):
        literature.export_bib(["doe2019alpa"], tmp_path / "x.bib", references=lit / "references.bib")
    with pytest.raises(ValueError, match="matches no entries"):
        literature.export_bib({"year_from": 2030}, tmp_path / "x.bib", references=lit / "references.bib")
    assert not (tmp_path / "x.bib").exists()


def test_stats(lit):
    numbers = literature.stats(lit / "references.bib")
    assert numbers["entries"] == 3 and numbers["complete"] == 2 and numbers["incomplete"] == 1
    assert numbers["per_family"].to_dict() == {
        "filter-ranking": 1,
        "lottery-ticket": 1,
        "magnitude": 2,
        "sensitivity": 1,
    }
    assert numbers["per_year"].to_dict() == {2019: 1, 2020: 1, 2021: 1}
    assert numbers["results_rows"] == 4
    assert numbers["per_setting"].to_dict() == {"resnet50/imagenet": 1, "resnet56/cifar10": 3}
    assert "entries: 3 (2 complete, 1 incomplete)" in literature.format_stats(numbers)


def test_load_results_dtypes(lit):
    results = load_results(lit / "results.csv")
    assert list(results.columns) == list(literature.RESULT_COLUMNS)
    assert results["pruned_top1"].dtype == float and results["flops_base"].dtype == float
    assert results["key"].dtype == "string" and pd.isna(results.loc[0, "delta_top1"])


def test_derived_columns_and_pareto_front(lit):
    results = load_results(lit / "results.csv")
    derived = literature.for_settings(results, ["resnet56/cifar10"])
    assert list(derived["method"]) == ["Alpha", "Beta", "Gamma"]
    alpha = derived.set_index("method").loc["Alpha"]
    assert alpha["delta_top1"] == pytest.approx(-0.2) and alpha["flops_reduction_pct"] == pytest.approx(52.0)
    front = literature.pareto_methods(results, ["resnet56/cifar10", "resnet50/imagenet"])
    assert front[["setting", "method"]].values.tolist() == [
        ["resnet56/cifar10", "Beta"],
        ["resnet56/cifar10", "Alpha"],
        ["resnet56/cifar10", "Gamma"],
        ["resnet50/imagenet", "Gamma"],
    ]


def test_plots_make_figures(lit):
    import matplotlib.pyplot as plt

    refs, results = load_references(lit / "references.bib"), load_results(lit / "results.csv")
    figs = [
        literature.plots.papers_per_year(refs),
        literature.plots.top_venues(refs, n=2),
        literature.plots.published_tradeoff(results, ["resnet56/cifar10", "alexnet/imagenet"]),
        literature.plots.published_tradeoff(results, ["resnet50/imagenet"], x="params_reduction_pct"),
        literature.plots.papers_per_year(refs.iloc[:0]),
    ]
    assert len(figs[2].axes) == 2
    assert sum(len(bar.patches) for bar in figs[0].axes[0].containers) == 3 * 3  # 3 years x 3 first families
    for fig in figs:
        plt.close(fig)
