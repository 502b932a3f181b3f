"""Filter rows by an expression, compiled once to an Arrow compute expression.

The language is a safe subset of Python expression syntax (nothing is evaluated by Python):

* columns by name; literals: strings, numbers, true/false (or True/False), null/None;
* comparisons ``== != < <= > >=`` (chains allowed), ``in (..)``, ``not in (..)``,
  ``is null`` / ``is not null`` (written ``is None`` / ``is not None``);
* ``and``, ``or``, ``not``, parentheses; arithmetic ``+ - * /``;
* functions: ``lower(x)``, ``upper(x)``, ``length(x)``, ``starts_with(x, 'a')``,
  ``ends_with(x, 'a')``, ``contains(x, 'a')``, ``abs(x)``.

A literal compared with a column takes the column's type (``created_at >= '2024-01-01'`` works on
a timestamp). As in SQL, a comparison with NULL is NULL and the row is dropped.
"""

from __future__ import annotations

import ast
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from openfuse_connectors.errors import ConfigError
from openfuse_connectors.transformer import Transformer


class _FilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    expr: str = Field(
        min_length=1, description="Keep rows where this is true, e.g. `amount > 10 and status != 'void'`."
    )


class Filter(Transformer):
    """Keep the rows where ``expr`` is true."""

    name = "filter"
    options_model = _FilterOptions
    opts: _FilterOptions

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        self.expression = compile_expr(self.opts.expr, schema)
        return schema

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        mask = evaluate(self.expression, batch)
        if not pa.types.is_boolean(mask.type):
            return batch.filter(self.expression)  # raises Arrow's own error for a non-boolean filter
        # Most filters keep every row of most batches (or none): then no column is copied.
        # As with SQL's WHERE, a NULL in the mask drops the row.
        kept = pc.sum(mask).as_py() or 0
        if kept == batch.num_rows:
            return batch
        if kept == 0:
            return batch.slice(0, 0)
        return batch.filter(mask)


def evaluate(expression: pc.Expression, batch: pa.RecordBatch) -> pa.Array:
    """The boolean value of ``expression`` for each row of ``batch``.

    Evaluated in a single-threaded Acero projection, so the caller can skip the copy when every row
    is kept. ``RecordBatch.filter(expression)`` (a multi-threaded plan that always copies every
    column) took 0.7 s CPU and ~80 MB more peak RSS for `qty >= 0` on the 1M-row table of
    bench/transform_overhead.py; this and the shortcut take ~0.02 s.
    """
    import pyarrow.acero as acero  # imports pyarrow.dataset: only when a filter runs

    plan = acero.Declaration.from_sequence(
        [
            acero.Declaration("table_source", acero.TableSourceNodeOptions(pa.Table.from_batches([batch]))),
            acero.Declaration("project", acero.ProjectNodeOptions([expression], ["mask"])),
        ]
    )
    mask = plan.to_table(use_threads=False).column(0)
    return mask.combine_chunks() if mask.num_chunks != 1 else mask.chunk(0)


_CMP = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_ARITH = {
    ast.Add: "add_checked",
    ast.Sub: "subtract_checked",
    ast.Mult: "multiply_checked",
    ast.Div: "divide_checked",
}
_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class _Lit:
    def __init__(self, value: Any):
        self.value = value


def compile_expr(text: str, schema: pa.Schema) -> pc.Expression:
    """Compile ``text`` against ``schema``; ConfigError naming the position and problem otherwise."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise _err(text, f"does not parse at column {e.offset}: {e.msg}") from None
    out = _Compiler(text, schema).visit(tree.body)
    if isinstance(out, _Lit):
        raise _err(text, "is a constant; it must refer to a column")
    return out


def _err(text: str, msg: str) -> ConfigError:
    return ConfigError(f"transform 'filter': expression {msg}", field="transforms[filter].expr", value=text)


class _Compiler:
    def __init__(self, text: str, schema: pa.Schema):
        self.text = text
        self.schema = schema

    def fail(self, node: ast.AST, msg: str) -> ConfigError:
        return _err(self.text, f"at column {getattr(node, 'col_offset', 0) + 1}: {msg}")

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.BoolOp):
            parts = [self.expr(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(node.op, ast.And) else (out | p)
            return out
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return ~self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                v = self.visit(node.operand)
                return _Lit(-v.value) if isinstance(v, _Lit) else pc.negate_checked(v)
            raise self.fail(node, f"unsupported operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare):
            left = node.left
            result = None
            for op, right in zip(node.ops, node.comparators, strict=True):
                part = self.compare(node, left, op, right)
                result = part if result is None else result & part
                left = right
            return result
        if isinstance(node, ast.BinOp):
            fn = _ARITH.get(type(node.op))
            if fn is None:
                raise self.fail(node, f"unsupported operator {type(node.op).__name__}")
            a, b = self.visit(node.left), self.visit(node.right)
            return pc.Expression._call(fn, [self.as_expr(a, b), self.as_expr(b, a)])
        if isinstance(node, ast.Name):
            if node.id in _NAMES:
                return _Lit(_NAMES[node.id])
            if self.schema.get_field_index(node.id) < 0:
                raise self.fail(node, f"unknown column {node.id!r} (columns: {', '.join(self.schema.names)})")
            return pc.field(node.id)
        if isinstance(node, ast.Constant):
            return _Lit(node.value)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(node, f"{type(node).__name__} is not allowed")

    def expr(self, node: ast.AST) -> pc.Expression:
        v = self.visit(node)
        if isinstance(v, _Lit):
            return pc.scalar(v.value)
        return v

    def column_type(self, e: Any) -> pa.DataType | None:
        if isinstance(e, pc.Expression):
            try:
                name = str(e)
                if self.schema.get_field_index(name) >= 0:
                    return self.schema.field(name).type
            except Exception:  # not a plain field reference
                return None
        return None

    def as_expr(self, v: Any, other: Any) -> pc.Expression:
        if not isinstance(v, _Lit):
            return v
        t = self.column_type(other)
        if v.value is None or t is None:
            return pc.scalar(v.value)
        try:
            lit = pa.scalar(v.value)
            if pa.types.is_timestamp(t) and t.tz and isinstance(v.value, str):
                try:
                    return pc.scalar(lit.cast(t))
                except pa.ArrowInvalid:  # no zone in the literal: read it as UTC
                    return pc.scalar(lit.cast(pa.timestamp(t.unit)).cast(t))
            return pc.scalar(lit.cast(t))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise _err(self.text, f"literal {v.value!r} does not fit column type {t}: {e}") from None

    def compare(self, node: ast.AST, left: ast.AST, op: ast.cmpop, right: ast.AST) -> pc.Expression:
        a = self.visit(left)
        if isinstance(op, ast.Is | ast.IsNot):
            b = self.visit(right)
            if not (isinstance(b, _Lit) and b.value is None):
                raise self.fail(node, "`is` only compares with None/null")
            null = pc.is_null(self.expr(left))
            return ~null if isinstance(op, ast.IsNot) else null
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, ast.Tuple | ast.List | ast.Set):
                raise self.fail(node, "`in` needs a literal list, e.g. status in ('a', 'b')")
            values = [self.visit(v) for v in right.elts]
            if not all(isinstance(v, _Lit) for v in values):
                raise self.fail(node, "`in` list must hold literals")
            t = self.column_type(a)
            try:
                arr = (
                    pa.array([v.value for v in values], t)
                    if t is not None
                    else pa.array([v.value for v in values])
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise _err(self.text, f"`in` list does not fit column type {t}: {e}") from None
            member = pc.is_in(self.expr(left), value_set=arr)
            return ~member if isinstance(op, ast.NotIn) else member
        fn = _CMP.get(type(op))
        if fn is None:
            raise self.fail(node, f"unsupported comparison {type(op).__name__}")
        b = self.visit(right)
        return pc.Expression._call(fn, [self.as_expr(a, b), self.as_expr(b, a)])

    def call(self, node: ast.Call) -> pc.Expression:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail(node, "only simple function calls are allowed")
        name = node.func.id
        args = [self.visit(a) for a in node.args]
        one = {"lower": "utf8_lower", "upper": "utf8_upper", "length": "utf8_length", "abs": "abs_checked"}
        two = {"starts_with": "starts_with", "ends_with": "ends_with", "contains": "match_substring"}
        if name in one and len(args) == 1 and not isinstance(args[0], _Lit):
            return pc.Expression._call(one[name], [args[0]])
        if name in two and len(args) == 2 and isinstance(args[1], _Lit) and isinstance(args[1].value, str):
            return pc.Expression._call(two[name], [args[0]], pc.MatchSubstringOptions(args[1].value))
        known = ", ".join(sorted([*one, *two]))
        raise self.fail(
            node, f"unknown function or wrong arguments: {name}({len(args)} args); functions: {known}"
        )
