"""Obligations: what the data plane must do to the rows a permit lets through.

A permit policy carries obligations in its ``@obligation`` annotation, a comma-separated list of
``kind:target`` items::

    @id("analysts-see-masked-pii")
    @obligation("mask:pii, hash:email, drop:ssn")
    permit (principal, action == Action::"dataset:read", resource is Dataset)
    when { principal.team == "analytics" };

``kind`` is ``mask``, ``hash`` or ``drop``. ``target`` names a column tag *or* a column name
(``pii`` matches every column tagged ``pii`` and a column named ``pii``); write ``tag:pii`` or
``column:email`` to mean only one of them. (Cedar allows one annotation per key, hence the list.)

When the policy is among a decision's determining policies, the decision carries its obligations;
:func:`resolve_columns` turns them into one action per column, the strongest winning
(drop > hash > mask), which the sync step applies as transforms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["OBLIGATION_ANNOTATION", "Obligation", "ObligationKind", "parse_obligations", "resolve_columns"]

OBLIGATION_ANNOTATION = "obligation"
ObligationKind = Literal["mask", "hash", "drop"]
_KINDS: tuple[ObligationKind, ...] = ("mask", "hash", "drop")
_STRENGTH = {"mask": 1, "hash": 2, "drop": 3}
_ITEM = re.compile(r"^(mask|hash|drop):(?:(tag|column):)?([^\s,:]+)$")


@dataclass(frozen=True, slots=True, order=True)
class Obligation:
    """One obligation: ``kind`` to apply to columns matched by ``target``.

    Attributes:
        kind: ``mask`` | ``hash`` | ``drop``.
        target: a tag or column name.
        match: ``any`` (tag or column name), ``tag`` or ``column``.
    """

    kind: ObligationKind
    target: str
    match: Literal["any", "tag", "column"] = "any"

    @classmethod
    def parse(cls, text: str) -> Obligation:
        """Parse ``mask:pii`` / ``hash:column:email``; raises ValueError naming the problem."""
        m = _ITEM.match(text.strip())
        if not m:
            raise ValueError(
                f"obligation {text.strip()!r} is not kind:target with kind one of {', '.join(_KINDS)} "
                "(e.g. mask:pii, hash:column:email)"
            )
        kind, match, target = m.groups()
        return cls(kind, target, match or "any")  # type: ignore[arg-type]

    def applies_to(self, column: str, tags: Iterable[str] = ()) -> bool:
        """Whether this obligation covers a column with that name and tags."""
        if self.match in ("any", "column") and column == self.target:
            return True
        return self.match in ("any", "tag") and self.target in set(tags)

    def __str__(self) -> str:
        return f"{self.kind}:{'' if self.match == 'any' else self.match + ':'}{self.target}"


def parse_obligations(value: str) -> tuple[Obligation, ...]:
    """Parse an ``@obligation`` annotation value (comma-separated); raises ValueError."""
    items = [s for s in (p.strip() for p in value.split(",")) if s]
    if not items:
        raise ValueError('@obligation is empty; write e.g. @obligation("mask:pii")')
    return tuple(dict.fromkeys(Obligation.parse(s) for s in items))


def resolve_columns(
    obligations: Iterable[Obligation], columns: Mapping[str, Iterable[str]]
) -> dict[str, ObligationKind]:
    """One action per affected column: ``{column: kind}``, the strongest obligation winning.

    Args:
        obligations: from a :class:`~openfuse_policy.decision.Decision`.
        columns: column name -> its tags.
    """
    out: dict[str, ObligationKind] = {}
    obs = list(obligations)
    for col, tags in columns.items():
        tagset = set(tags)
        for ob in obs:
            if ob.applies_to(col, tagset) and _STRENGTH[ob.kind] > _STRENGTH.get(out.get(col, ""), 0):
                out[col] = ob.kind
    return out
