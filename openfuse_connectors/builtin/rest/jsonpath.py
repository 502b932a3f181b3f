"""A small, documented subset of JSONPath for picking records and paging values out of a body.

Supported (and nothing else, so a typo fails at config time instead of matching nothing):

* ``$`` - the root; optional, ``data.items`` means ``$.data.items``;
* ``.name`` or ``['name']`` / ``["name"]`` - a member of an object (bracket form for names with
  dots, spaces or other punctuation);
* ``[0]``, ``[-1]`` - an element of an array;
* ``[*]`` or ``.*`` - every element of an array (or every value of an object).

Filters (``[?(...)]``), slices, unions and recursive descent (``..``) are not supported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["MISSING", "JsonPath"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Returned by :meth:`JsonPath.first` when nothing matches.
MISSING: Any = _Missing()

_NAME = re.compile(r"[A-Za-z_$@-][\w$@-]*")
_BRACKET = re.compile(r"""\[\s*(?:(\*)|(-?\d+)|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")

# A step: ("key", name) | ("index", n) | ("all", None)
_Step = tuple[str, Any]


class JsonPath:
    """A compiled path. Raises ``ValueError`` naming the position of a syntax error."""

    __slots__ = ("steps", "text")

    def __init__(self, text: str, *, _steps: tuple[_Step, ...] | None = None):
        self.text = text
        self.steps = _parse(text) if _steps is None else _steps

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    @property
    def has_wildcard(self) -> bool:
        return any(kind == "all" for kind, _ in self.steps)

    def find(self, doc: Any) -> list[Any]:
        """Every value the path matches, in document order."""
        return list(_walk(doc, self.steps))

    def first(self, doc: Any) -> Any:
        """The first match, or :data:`MISSING`."""
        return next(_walk(doc, self.steps), MISSING)

    def without_last_wildcard(self) -> tuple[JsonPath, bool]:
        """The path minus a trailing ``[*]``, and whether there was one."""
        if self.steps and self.steps[-1][0] == "all":
            return JsonPath(self.text, _steps=self.steps[:-1]), True
        return self, False


def _parse(text: str) -> tuple[_Step, ...]:
    s = text.strip()
    if not s:
        raise ValueError("JSON path must not be empty; use `$` for the whole body")
    i = 0
    if s.startswith("$"):
        i = 1
    steps: list[_Step] = []
    first = True
    while i < len(s):
        ch = s[i]
        if ch == "[":
            m = _BRACKET.match(s, i)
            if not m:
                raise ValueError(
                    f"JSON path {text!r}: bad bracket at position {i} (use [*], [0] or ['name'])"
                )
            star, idx, sq, dq = m.groups()
            if star:
                steps.append(("all", None))
            elif idx is not None:
                steps.append(("index", int(idx)))
            else:
                raw = sq if sq is not None else dq
                steps.append(("key", re.sub(r"\\(.)", r"\1", raw)))
            i = m.end()
        else:
            if ch == ".":
                if s.startswith("..", i):
                    raise ValueError(f"JSON path {text!r}: recursive descent '..' is not supported")
                i += 1
            elif not (first and i == 0):
                raise ValueError(f"JSON path {text!r}: expected '.' or '[' at position {i}")
            if s.startswith("*", i):
                steps.append(("all", None))
                i += 1
            else:
                m = _NAME.match(s, i)
                if not m:
                    raise ValueError(
                        f"JSON path {text!r}: expected a name at position {i} (use ['...'] for other names)"
                    )
                steps.append(("key", m.group(0)))
                i = m.end()
        first = False
    return tuple(steps)


def _walk(node: Any, steps: tuple[_Step, ...]) -> Iterator[Any]:
    if not steps:
        yield node
        return
    kind, arg = steps[0]
    rest = steps[1:]
    if kind == "key":
        if isinstance(node, dict) and arg in node:
            yield from _walk(node[arg], rest)
    elif kind == "index":
        if isinstance(node, list) and -len(node) <= arg < len(node):
            yield from _walk(node[arg], rest)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, rest)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _walk(item, rest)
