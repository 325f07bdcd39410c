"""The `cite` and `lit ...` handlers, called through a parser built with add_commands."""

import argparse

import pytest
import rispy

from workbench.literature import cli

BIB = r"""@inproceedings{doe2019alpha,
  author = {Doe, Jane and Roe, Richard},
  title = {Alpha Pruning of Fixture Networks},
  booktitle = {Fixture Conference},
  year = {2019},
  doi = {10.1234/fixture.2019.001},
  family = {magnitude},
  granularity = {weight},
  source = {test fixture}
}

@misc{poe2020beta,
  author = {Poe, Edgar},
  title = {Beta Tickets in Fixture Networks},
  year = {2020},
  eprint = {2001.01234},
  family = {lottery-ticket},
  granularity = {weight, filter},
  source = {test fixture},
  incomplete = {doi}
}
"""
CSV = """key,method,model,dataset,baseline_top1,pruned_top1,delta_top1,params_base,params_pruned,flops_base,\
flops_pruned,flops_unit,flops_reduction_pct,params_reduction_pct,speedup,source
doe2019alpha,Alpha,ResNet-56,CIFAR-10,93.0,92.8,-0.2,,,,,,50,,,t1
"""


@pytest.fixture
def lit(tmp_path):
    (tmp_path / "references.bib").write_text(BIB, encoding="utf-8")
    (tmp_path / "results.csv").write_text(CSV, encoding="utf-8")
    return tmp_path


def run(argv):
    parser = argparse.ArgumentParser(prog="workbench")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cite_several_keys(lit, capsys):
    bib = str(lit / "references.bib")
    assert run(["cite", "doe2019alpha", "poe2020beta", "--style", "apa", "--references", bib]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Doe, J., & Roe, R. (2019). Alpha Pruning of Fixture Networks.")
    assert "Poe, E. (2020)" in out and "https://doi.org/10.1234/fixture.2019.001" in out


def test_cite_ieee_numbers_several_keys(lit, capsys):
    run(["cite", "poe2020beta", "doe2019alpha", "--style", "ieee", "--references", str(lit / "references.bib")])
    lines = capsys.readouterr().out.splitlines()
    assert [line[:7] for line in lines] == ["[1] E. ", "[2] J. "]


def test_cite_ris_output_parses(lit, capsys):
    run(["cite", "doe2019alpha", "poe2020beta", "--style", "ris", "--references", str(lit / "references.bib")])
    records = rispy.loads(capsys.readouterr().out)
    assert [r["title"] for r in records] == ["Alpha Pruning of Fixture Networks", "Beta Tickets in Fixture Networks"]


def test_cite_unknown_style_is_rejected_by_the_parser(lit, capsys):
    with pytest.raises(SystemExit):
        run(["cite", "doe2019alpha", "--style", "mla"])
    assert "harvard" in capsys.readouterr().err


def test_cite_unknown_key_raises_with_suggestion(lit):
    with pytest.raises(ValueError, match="closest: doe2019alpha"):
        run(["cite", "doe2019alhpa", "--references", str(lit / "references.bib")])


def test_search(lit, capsys):
    assert (
        run(
            [
                "lit",
                "search",
                "fixture",
                "--family",
                "lottery-ticket",
                "--year-from",
                "2020",
                "--references",
                str(lit / "references.bib"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "poe2020beta" in out and "doe2019alpha" not in out and out.rstrip().endswith("1 entry")


def test_validate_clean_and_dirty(lit, capsys):
    argv = ["lit", "validate", "--references", str(lit / "references.bib")]
    assert run(argv) == 0
    assert capsys.readouterr().out.strip().endswith("0 problems")
    (lit / "results.csv").write_text(CSV.replace(",t1", ",t1\nnobody2020x,X,VGG-16,CIFAR-10,1,1,0,,,,,GFLOPs,,,,t"))
    assert run(argv) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "nobody2020x" in lines[0] + lines[1]
    assert lines[-1] == "2 problems (1 flops-unit, 1 results-key)"


def test_stats(lit, capsys):
    assert run(["lit", "stats", "--references", str(lit / "references.bib")]) == 0
    out = capsys.readouterr().out
    assert "entries: 2 (1 complete, 1 incomplete)" in out and "resnet56/cifar10: 1" in out


def test_export(lit, tmp_path, capsys):
    out = tmp_path / "subset.bib"
    assert (
        run(["lit", "export", "--family", "magnitude", "--out", str(out), "--references", str(lit / "references.bib")])
        == 0
    )
    assert "wrote 1 entries" in capsys.readouterr().out
    assert "@inproceedings{doe2019alpha," in out.read_text() and "poe2020beta" not in out.read_text()
    with pytest.raises(ValueError, match="either --key or filters"):
        run(
            [
                "lit",
                "export",
                "--key",
                "doe2019alpha",
                "--family",
                "magnitude",
                "--out",
                str(out),
                "--references",
                str(lit / "references.bib"),
            ]
        )


def test_merge(lit, tmp_path, capsys):
    parts, out = tmp_path / "parts", tmp_path / "merged"
    parts.mkdir()
    (parts / "a.bib").write_text(BIB)
    (parts / "results_refs.bib").write_text(BIB.replace("doe2019alpha", "AlphaPrune"))
    (parts / "results.csv").write_text(CSV.replace("doe2019alpha", "AlphaPrune"))
    assert run(["lit", "merge", "--parts", str(parts), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 entries from 2 files -> 2 papers" in printed
    assert (out / "results.csv").read_text().splitlines()[1].startswith("doe2019alpha,")
    assert run(["lit", "validate", "--references", str(out / "references.bib")]) == 0
