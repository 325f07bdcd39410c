"""Short venue names ('NeurIPS', 'CVPR') from the full names the sources give."""

from __future__ import annotations

import re

# Order matters: the first pattern that matches wins (CVPR before the journal "Pattern Recognition").
_VENUES = (
    (r"neural information processing systems|\bnips\b|\bneurips\b", "NeurIPS"),
    (r"learning representations|\biclr\b", "ICLR"),
    (r"international conference on machine learning|\bicml\b", "ICML"),
    (r"computer vision and pattern recognition|\bcvpr\b", "CVPR"),
    (r"international conference on computer vision|\biccv\b", "ICCV"),
    (r"european conference on computer vision|\beccv\b", "ECCV"),
    (r"winter conference on applications of computer vision|\bwacv\b", "WACV"),
    (r"british machine vision|\bbmvc\b", "BMVC"),
    (r"\baaai\b", "AAAI"),
    (r"joint conference on artificial intelligence|\bijcai\b", "IJCAI"),
    (r"pattern analysis and machine intelligence|\btpami\b", "TPAMI"),
    (r"neural networks and learning systems|\btnnls\b", "TNNLS"),
    (r"international journal of computer vision|\bijcv\b", "IJCV"),
    (r"journal of machine learning research|\bjmlr\b", "JMLR"),
    (r"transactions on machine learning research|\btmlr\b", "TMLR"),
    (r"machine learning and systems|\bmlsys\b|\bsysml\b", "MLSys"),
    (r"ieee access", "IEEE Access"),
    (r"neurocomputing", "Neurocomputing"),
    (r"^pattern recognition$", "Pattern Recognition"),
    (r"\barxiv\b|\bcorr\b", "arXiv"),
)


def short_venue(venue: str, eprint: str = "") -> str:
    """A short name for `venue`; 'arXiv' if there is no venue but an eprint; else the venue as given."""
    text = " ".join(str(venue or "").split())
    lowered = text.lower()
    for pattern, short in _VENUES:
        if re.search(pattern, lowered):
            return short
    if not text and eprint:
        return "arXiv"
    return text
