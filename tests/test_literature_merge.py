"""merge_parts: dedup by title / DOI / arXiv id, most fields lead, sources unioned, conflicts kept, keys remapped."""

import csv
import io

import bibtexparser
import pytest

from workbench.literature import merge_into, merge_parts, rewrite_results, schema, validate

Y2019 = r"""@inproceedings{doe2019alpha,
  author = {Doe, Jane and Roe, Richard},
  title = {Alpha Pruning of Fixture Networks},
  booktitle = {Fixture Conference},
  year = {2019},
  pages = {1--10},
  family = {magnitude},
  granularity = {weight},
  source = {list A},
  incomplete = {doi}
}

@misc{poe2020beta,
  author = {Poe, Edgar},
  title = {Beta Tickets},
  year = {2020},
  eprint = {2001.01234},
  archiveprefix = {arXiv},
  family = {lottery-ticket},
  granularity = {weight},
  source = {list A}
}

@article{moe2021gamma,
  author = {Moe, Mo},
  title = {Gamma Channels},
  journal = {Journal of Fixtures},
  year = {2021},
  doi = {10.1234/gamma},
  family = {filter-ranking},
  granularity = {channel},
  source = {list A}
}
"""
RESULTS_REFS = r"""@inproceedings{AlphaPrune,
  author = {Jane Doe and Richard Roe},
  title = {{Alpha} pruning of fixture networks},
  booktitle = {Fixture Conference},
  year = {2019},
  pages = {1-10},
  doi = {10.1234/alpha},
  family = {magnitude, sensitivity},
  granularity = {weight},
  code = {https://github.com/example/alpha},
  source = {paper table}
}

@inproceedings{BetaLT,
  author = {Poe, Edgar},
  title = {Beta Tickets: Winning at Fixtures},
  booktitle = {Other Conference},
  year = {2021},
  eprint = {2001.01234v2},
  family = {lottery-ticket},
  granularity = {weight},
  source = {paper table}
}

@article{moe2021gamma2,
  author = {Moe, M.},
  title = {Gamma Channel Pruning Revisited},
  journal = {Journal of Fixtures},
  year = {2022},
  doi = {10.1234/GAMMA},
  family = {filter-ranking},
  granularity = {channel},
  source = {paper table}
}

@misc{doe2019alpha,
  author = {Doe, John},
  title = {A Completely Different Paper},
  year = {2019},
  eprint = {1901.00001},
  family = {other},
  granularity = {other},
  source = {paper table}
}
"""
EXTRA = schema.EXTRA_COLUMNS
HEADER = (
    "key,method,model,dataset,baseline_top1,pruned_top1,delta_top1,params_base,params_pruned,flops_base,"
    "flops_pruned,flops_unit,flops_reduction_pct,params_reduction_pct,speedup,source"
)
RESULTS = (
    "\n".join(
        [
            HEADER,
            "AlphaPrune,Alpha,ResNet-56,CIFAR-10,93.0,92.8,-0.2,,,,,,50,,,t1",
            "BetaLT,Beta,ResNet-56,CIFAR-10,93.0,93.1,0.1,,,,,,30,,,t2",
            "BetaLT,Beta,ResNet-56,CIFAR-10,93.0,93.1,0.1,,,,,,30,,,t2",
            "moe2021gamma,Gamma,ResNet-56,CIFAR-10,93.0,92.0,-1.0,,,,,,70,,,t3",
        ]
    )
    + "\n"
)


@pytest.fixture
def parts(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "y2019.bib").write_text(Y2019, encoding="utf-8")
    (folder / "results_refs.bib").write_text(RESULTS_REFS, encoding="utf-8")
    (folder / "results.csv").write_text(RESULTS, encoding="utf-8")
    (folder / "CONVENTIONS.md").write_text("not BibTeX", encoding="utf-8")
    return folder


def entries(text):
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    return {e.key: {f.key: f.value for f in e.fields} for e in library.entries}


def test_duplicates_by_title_doi_and_arxiv_become_one_entry(parts):
    merged = merge_parts(parts)
    got = entries(merged.text)
    assert sorted(got) == ["doe2019alpha", "doe2019alphab", "moe2021gamma", "poe2020beta"]
    assert merged.remap == {"AlphaPrune": "doe2019alpha", "BetaLT": "poe2020beta", "moe2021gamma2": "moe2021gamma"}


def test_most_fields_lead_missing_fields_filled_sources_unioned(parts):
    alpha = entries(merge_parts(parts).text)["doe2019alpha"]
    assert alpha["doi"] == "10.1234/alpha" and alpha["code"] == "https://github.com/example/alpha"
    assert alpha["family"] == "magnitude, sensitivity"
    assert set(alpha["source"].split("; ")) == {"list A", "paper table"}
    assert "incomplete" not in alpha  # the doi it lacked was found in the other copy
    assert "conflict" not in alpha  # same authors, title and pages, written differently


def test_disagreements_are_recorded_in_conflict(parts):
    got = entries(merge_parts(parts).text)
    beta, gamma = got["poe2020beta"], got["moe2021gamma"]
    assert "year: '2020' (poe2020beta in y2019.bib) vs '2021' (BetaLT in results_refs.bib)" in beta["conflict"]
    assert "title:" in beta["conflict"]
    assert "title:" in gamma["conflict"] and "year:" in gamma["conflict"]
    assert "author:" not in gamma["conflict"]  # "Moe, Mo" and "Moe, M." share the last name


def test_key_clash_between_different_papers_is_renamed_and_noted(parts):
    merged = merge_parts(parts)
    assert entries(merged.text)["doe2019alphab"]["title"] == "A Completely Different Paper"
    assert any("key clash" in note and "doe2019alphab" in note for note in merged.notes)
    assert "doe2019alpha" not in merged.remap


def test_rewrite_results_maps_keys_and_drops_exact_duplicates(parts):
    text, notes = rewrite_results([RESULTS], merge_parts(parts).remap)
    lines = text.splitlines()
    assert lines[0] == HEADER + "," + ",".join(EXTRA)
    assert [line.split(",")[0] for line in lines[1:]] == ["doe2019alpha", "poe2020beta", "moe2021gamma"]
    assert any("duplicate" in note for note in notes)


def test_rewrite_results_puts_required_columns_first():
    shuffled = "method,key,extra\nAlpha,AlphaPrune,x\n"
    text, notes = rewrite_results([shuffled], {"AlphaPrune": "doe2019alpha"})
    header, row = text.splitlines()
    assert header == HEADER + ",extra," + ",".join(EXTRA)
    assert row.startswith("doe2019alpha,Alpha,") and ",x," in row
    assert any("lacks columns" in note for note in notes)


def test_merge_into_writes_both_files_that_validate(parts, tmp_path):
    out = tmp_path / "literature"
    notes = merge_into(parts, out)
    assert {p.name for p in out.iterdir()} == {"references.bib", "results.csv"}  # no temp files left
    assert any("wrote" in note for note in notes)
    assert list(validate(out / "references.bib")) == []


def test_merge_notes_unparsable_blocks_and_keeps_the_rest(parts):
    (parts / "broken.bib").write_text("@article{broken,\n  title = {unbalanced\n", encoding="utf-8")
    merged = merge_parts(parts)
    assert any("skipped unparsable block at broken.bib:1" in note for note in merged.notes)
    assert len(entries(merged.text)) == 4


def test_merge_without_bib_files_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no .bib files in"):
        merge_parts(tmp_path)


def test_rewrite_results_keeps_the_stated_unit_and_infers_into_its_own_column():
    rows = (
        HEADER
        + ",flops_unit_source\n"
        + "\n".join(
            [
                "a2019x,A,resnet56,cifar10,93,92,-1,,,125485696,60000000,FLOPs,,,,t1,column header 'FLOPs'",
                "a2019x,A,resnet56,cifar10,93,91,-2,,,,40000000,FLOPs,,,,t1,column header 'FLOPs'",
                "a2019x,A,resnet56,cifar10,93,91,-2,,,,,FLOPs,50,,,t2,column header 'FLOPs'",
            ]
        )
    )
    text, notes = rewrite_results([rows], {})
    out = list(csv.DictReader(io.StringIO(text)))
    assert [r["flops_unit"] for r in out] == ["FLOPs"] * 3  # as the source prints it
    assert [r["flops_unit_inferred"] for r in out] == ["MACs", "MACs", ""]  # measured; the second from its table
    assert "measured" in out[0]["flops_unit_inferred_reason"] and out[1]["flops_unit_inferred_reason"]
    assert out[1]["flops_pruned"] == "40000000"  # counts stay in their columns
