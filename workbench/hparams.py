"""Typed hyperparameters: frozen dataclasses with a default and a one-line help per field, validated on construction.

A method's hyperparameters subclass `Hparams`; each field is declared with `param(default, help)` and checked in
`__post_init__` with `workbench.checks`. No heavy imports, so configurations can be built and checked cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from workbench import checks
from workbench.config import plain


def param(default: Any, help: str) -> Any:  # noqa: A002 (the word users expect)
    """A hyperparameter field with its default and one line of help."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Hparams:
    """Base of every method's hyperparameters (a method without any uses it as is)."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def help(cls) -> dict[str, str]:
        """{field: "help (default: value)"} for every hyperparameter."""
        return {f.name: f"{f.metadata.get('help', '')} (default: {f.default!r})" for f in dataclasses.fields(cls)}

    @classmethod
    def build(cls, owner: str = "", **values: Any) -> Hparams:
        """The hyperparameters from keyword values; an unknown name fails in one line naming the known ones."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            known = ", ".join(cls.names()) or "(none)"
            of = f" of {owner}" if owner else ""
            raise checks.ConfigError(f"unknown hyperparameter {unknown[0]!r}{of}; known: {known}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The hyperparameters as plain JSON values (tuples become lists)."""
        return plain(self)
