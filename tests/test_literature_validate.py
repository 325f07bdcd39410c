"""validate(): a clean fixture passes; each rule catches its own kind of problem on a small bad fixture."""

import pytest

from workbench.literature import validate

HEADER = (
    "key,method,model,dataset,baseline_top1,pruned_top1,delta_top1,params_base,params_pruned,flops_base,"
    "flops_pruned,flops_unit,flops_reduction_pct,params_reduction_pct,speedup,source,"
    "flops_unit_source,flops_unit_inferred,flops_unit_inferred_reason,reported_in,result_id,counted"
)
ROWS = [
    "doe2019alpha,Alpha,ResNet-56,CIFAR-10,93.0,92.8,-0.2,0.85e6,0.5e6,125e6,60e6,MACs,52,41.2,,fixture table 1,"
    "column header 'MACs',MACs,dense count matches,,R1,yes",
    "poe2020beta,Beta,ResNet-56,CIFAR-10,93.2,93.4,,,,,,,,,,fixture table 2,,,,,R2,yes",
    "moe2021gamma,Gamma,ResNet-50,ImageNet,76.1,75.0,-1.1,25.6e6,15e6,4.1e9,2.0e9,FLOPs,,,1.8,"
    "example/gamma@0123456789abcdef0123456789abcdef01234567:README.md table 3,column header 'GFLOPs',,,,R3,yes",
    "doe2019alpha,Alpha (quoted),ResNet-56,CIFAR-10,,92.8,,,,,,,52,41,,fixture table 3,,,,moe2021gamma,R1,no",
]


def entry(kind, key, **fields):
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields.items())
    return f"@{kind}{{{key},\n{body}\n}}\n"


ALPHA = entry(
    "inproceedings",
    "doe2019alpha",
    author="Doe, Jane and Roe, Richard",
    title="Alpha Pruning of Fixture Networks",
    booktitle="Fixture Conference",
    year="2019",
    doi="10.1234/fixture.2019.001",
    family="magnitude, sensitivity",
    granularity="weight",
    source="test fixture",
)
BETA = entry(
    "misc",
    "poe2020beta",
    author="Poe, Edgar",
    title="Beta Tickets in Fixture Networks",
    year="2020",
    eprint="2001.01234",
    archiveprefix="arXiv",
    family="lottery-ticket",
    granularity="weight, filter",
    source="test fixture",
    incomplete="doi",
)
GAMMA = entry(
    "article",
    "moe2021gamma",
    author="Moe, Mo",
    title="Gamma Channels",
    journal="Journal of Fixtures",
    year="2021",
    family="filter-ranking",
    granularity="channel",
    code="https://github.com/example/gamma",
    source="test fixture",
)
GOOD_BIB = "\n".join([ALPHA, BETA, GAMMA])
GOOD_CSV = "\n".join([HEADER, *ROWS]) + "\n"


def write(folder, bib=GOOD_BIB, csv=GOOD_CSV):
    (folder / "references.bib").write_text(bib, encoding="utf-8")
    if csv is not None:
        (folder / "results.csv").write_text(csv, encoding="utf-8")
    return folder / "references.bib"


def test_clean_fixture_has_no_problems(tmp_path):
    problems = validate(write(tmp_path))
    assert list(problems) == [] and problems.summary() == "0 problems"


def test_missing_venue_is_fine_when_declared_incomplete(tmp_path):
    no_eprint = GOOD_BIB.replace("  eprint = {2001.01234},\n  archiveprefix = {arXiv},\n", "")
    assert [p.rule for p in validate(write(tmp_path, no_eprint))] == ["venue"]
    declared = no_eprint.replace("incomplete = {doi}", "incomplete = {doi, eprint}")
    assert list(validate(write(tmp_path, declared))) == []


BAD = {
    "parse": (GOOD_BIB + "\n@article{broken,\n  title = {unbalanced\n", GOOD_CSV),
    "required": (GOOD_BIB.replace("  author = {Moe, Mo},\n", ""), GOOD_CSV),
    "venue": (GOOD_BIB.replace("  booktitle = {Fixture Conference},\n", ""), GOOD_CSV),
    "year": (GOOD_BIB.replace("year = {2021}", "year = {21}"), GOOD_CSV),
    "family": (GOOD_BIB.replace("family = {lottery-ticket}", "family = {lottery}"), GOOD_CSV),
    "granularity": (GOOD_BIB.replace("granularity = {channel}", "granularity = {neuron}"), GOOD_CSV),
    "duplicate-key": (GOOD_BIB + "\n" + GAMMA.replace("Gamma Channels", "Another Paper"), GOOD_CSV),
    "duplicate-title": (
        GOOD_BIB + "\n" + GAMMA.replace("moe2021gamma", "zed2022gamma").replace("Gamma Channels", "{Gamma} channels"),
        GOOD_CSV,
    ),
    "duplicate-doi": (
        GOOD_BIB
        + "\n"
        + entry(
            "misc",
            "zed2022delta",
            author="Zed, Z",
            title="Delta",
            year="2022",
            eprint="2202.00001",
            doi="10.1234/FIXTURE.2019.001",
            family="other",
            granularity="other",
            source="x",
        ),
        GOOD_CSV,
    ),
    "duplicate-arxiv": (
        GOOD_BIB
        + "\n"
        + entry(
            "misc",
            "zed2022delta",
            author="Zed, Z",
            title="Delta",
            year="2022",
            eprint="2001.01234v3",
            family="other",
            granularity="other",
            source="x",
        ),
        GOOD_CSV,
    ),
    "doi": (GOOD_BIB.replace("10.1234/fixture.2019.001", "https://doi.org/10.1234/fixture.2019.001"), GOOD_CSV),
    "arxiv": (GOOD_BIB.replace("eprint = {2001.01234}", "eprint = {arXiv:2001.1234}"), GOOD_CSV),
    "source": (GOOD_BIB.replace("  source = {test fixture},\n  incomplete", "  incomplete"), GOOD_CSV),
    "columns": (GOOD_BIB, GOOD_CSV.replace("baseline_top1,pruned_top1", "pruned_top1,baseline_top1")),
    "numeric": (GOOD_BIB, GOOD_CSV.replace("93.0,92.8", "93.0,92.8%")),
    "flops-unit": (GOOD_BIB, GOOD_CSV.replace(",FLOPs,", ",GFLOPs,")),
    "flops-unit-source": (GOOD_BIB, GOOD_CSV.replace("column header 'MACs'", "")),
    "flops-unit-inferred": (GOOD_BIB, GOOD_CSV.replace("MACs,dense count matches", "MACs,")),
    "delta": (GOOD_BIB, GOOD_CSV.replace("93.0,92.8,-0.2", "93.0,92.8,-0.3")),
    "reported-in": (GOOD_BIB, GOOD_CSV.replace(",moe2021gamma,R1,no", ",moe2021gama,R1,no")),
    "result-copies": (GOOD_BIB, GOOD_CSV.replace(",moe2021gamma,R1,no", ",moe2021gamma,R1,yes")),
    "unlinked-copy": (GOOD_BIB, GOOD_CSV.replace(",moe2021gamma,R1,no", ",moe2021gamma,R4,yes")),
    "counted-copy": (
        GOOD_BIB,
        GOOD_CSV.replace(",moe2021gamma,R1,no", ",moe2021gamma,R1,yes").replace("matches,,R1,yes", "matches,,R1,no"),
    ),
    "unpinned-source": (
        GOOD_BIB,
        GOOD_CSV.replace("example/gamma@0123456789abcdef0123456789abcdef01234567:", "github.com/example/gamma "),
    ),
    "results-key": (GOOD_BIB, GOOD_CSV.replace("moe2021gamma,Gamma", "moe2021gama,Gamma")),
    "results-file": (GOOD_BIB, None),
}


@pytest.mark.parametrize("rule", sorted(BAD))
def test_each_rule_catches_its_problem(tmp_path, rule):
    bib, csv = BAD[rule]
    problems = validate(write(tmp_path, bib, csv))
    assert {p.rule for p in problems} == {rule}, [str(p) for p in problems]
    assert all("\n" not in str(p) for p in problems)


def test_problem_lines_name_file_line_and_key(tmp_path):
    bib = GOOD_BIB.replace("family = {lottery-ticket}", "family = {lottery}")
    (problem,) = validate(write(tmp_path, bib))
    assert str(problem).startswith("references.bib:")
    assert "poe2020beta" in str(problem) and "'lottery'" in str(problem) and "lottery-ticket" in str(problem)


def test_extra_cites_must_exist(tmp_path):
    problems = validate(write(tmp_path), cites=["doe2019alpha", "han2015learnin"])
    assert [p.rule for p in problems] == ["cite"] and "han2015learnin" in str(problems[0])
    problems = validate(write(tmp_path), cites={"my method": ""})
    assert [p.rule for p in problems] == ["cite"] and "my method" in str(problems[0])


def test_a_bib_source_naming_a_repository_needs_a_commit(tmp_path):
    bib = GOOD_BIB.replace(
        "source = {test fixture},\n  incomplete", "source = {doi: github.com/example/beta README.md},\n  incomplete"
    )
    problems = validate(write(tmp_path, bib))
    assert [p.rule for p in problems] == ["unpinned-source"] and "poe2020beta" in str(problems[0])
    pinned = bib.replace("github.com/example/beta README.md", "example/beta@0123abc:README.md")
    assert list(validate(write(tmp_path, pinned))) == []


def test_real_literature_is_clean_and_each_copy_is_linked():
    from workbench.literature import load_results, results

    assert validate().summary() == "0 problems"
    frame = load_results()
    linked = frame[frame["result_id"].fillna("") != ""]
    assert (linked.groupby("result_id")["counted"].apply(lambda c: (c == "yes").sum()) == 1).all()
    assert len(results.counted(frame)) == frame["result_id"].nunique()
