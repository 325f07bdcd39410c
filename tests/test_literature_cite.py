"""Citation styles on a real entry (facts from the SciTePress page of Li 2024, seed 000), and their errors."""

import bibtexparser
import pytest
import rispy

from workbench.literature import STYLES, cite

LI2024 = """@inproceedings{li2024advancements,
  author = {Li, Xinrui},
  title = {The Advancements of Pruning Techniques in Deep Neural Networks},
  booktitle = {Proceedings of the 1st International Conference on Data Science and Engineering - Volume 1: ICDSE},
  year = {2024},
  pages = {177--181},
  publisher = {SciTePress},
  doi = {10.5220/0012837000004547},
  isbn = {978-989-758-690-3},
  family = {survey},
  granularity = {other},
  source = {SciTePress paper page: Harvard, BibTeX and EndNote citations}
}

@misc{poe2020beta,
  author = {Poe, Edgar and von Neumann, John},
  title = {Beta Tickets in {Fixture} Networks},
  year = {2020},
  eprint = {2001.01234},
  archiveprefix = {arXiv},
  family = {lottery-ticket},
  granularity = {weight},
  source = {test fixture}
}
"""
TITLE = "The Advancements of Pruning Techniques in Deep Neural Networks"
VENUE = "Proceedings of the 1st International Conference on Data Science and Engineering - Volume 1: ICDSE"
DOI = "10.5220/0012837000004547"


@pytest.fixture
def bib(tmp_path):
    path = tmp_path / "references.bib"
    path.write_text(LI2024, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("style", "author", "year"),
    [
        ("harvard", "Li, X.", "(2024)"),
        ("apa", "Li, X.", "(2024)"),
        ("ieee", "X. Li", "2024"),
    ],
)
def test_prose_styles_name_author_year_title_and_doi(bib, style, author, year):
    text = cite("li2024advancements", style, bib)
    assert text.count("\n") == 0
    assert text.startswith(author) or text.startswith(f"[1] {author}")
    assert year in text and TITLE in text and VENUE in text
    assert DOI in text
    assert "177" in text and "181" in text


def test_apa_is_exactly_the_csl_rendering(bib):
    assert cite("li2024advancements", "apa", bib) == (
        f"Li, X. (2024). {TITLE}. {VENUE}, 177–181. https://doi.org/{DOI}"
    )


def test_harvard_carries_what_the_publishers_harvard_form_carries(bib):
    # Publisher's form: "Li X. (2024). <title>. In <venue>; ..., SciTePress, pages 177-181. DOI: <doi>"
    text = cite("li2024advancements", "harvard", bib)
    for part in ("Li, X.", "(2024)", TITLE, VENUE, "SciTePress", "177–181", DOI):
        assert part in text


def test_bibtex_parses_back_without_workbench_fields(bib):
    library = bibtexparser.parse_string(cite("li2024advancements", "bibtex", bib))
    (entry,) = library.entries
    assert entry.key == "li2024advancements" and entry.entry_type == "inproceedings"
    assert entry["author"] == "Li, Xinrui" and entry["year"] == "2024" and entry["doi"] == DOI
    assert entry["title"] == TITLE
    assert not {"family", "granularity", "source"} & set(entry.fields_dict)


def test_ris_parses_back_with_rispy(bib):
    (record,) = rispy.loads(cite("li2024advancements", "ris", bib))
    assert record["type_of_reference"] == "CPAPER"
    assert record["authors"] == ["Li, Xinrui"]
    assert record["title"] == TITLE and record["secondary_title"] == VENUE
    assert record["year"] == "2024" and record["doi"] == DOI
    assert (record["start_page"], record["end_page"]) == ("177", "181")


def test_arxiv_only_entry_in_every_style(bib):
    for style in ("harvard", "apa", "ieee"):
        text = cite("poe2020beta", style, bib)
        assert "2020" in text and "Beta Tickets in Fixture Networks" in text and "von Neumann" in text
    (record,) = rispy.loads(cite("poe2020beta", "ris", bib))
    assert record["type_of_reference"] == "UNPB"
    assert record["authors"] == ["Poe, Edgar", "von Neumann, John"]
    assert record["urls"] == ["https://arxiv.org/abs/2001.01234"]


def test_unknown_key_names_it_and_the_closest_keys(bib):
    with pytest.raises(ValueError, match=r"unknown reference key 'li2024advancement'; closest: li2024advancements"):
        cite("li2024advancement", "apa", bib)


def test_unknown_style_lists_the_styles_on_one_line(bib):
    with pytest.raises(ValueError) as info:
        cite("li2024advancements", "mla", bib)
    message = str(info.value)
    assert "'mla'" in message and "\n" not in message
    assert all(style in message for style in STYLES)


def test_missing_references_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.bib"):
        cite("x", "apa", tmp_path / "nothing.bib")
