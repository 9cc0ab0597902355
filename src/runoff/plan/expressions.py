"""Segment expressions (分群条件): a small, safe language over account features, parsed once into Polars.

A plan writes each segment's condition as text, e.g. ``bucket == current and balance < 3000`` or
``dpd between 1 and 90 and not product in [flat-fee-E]``. The text is parsed at the edge (when the plan
file loads) into a tree that is checked against :data:`runoff.plan.features.FEATURES` and then compiled to
one Polars expression; nothing is ever evaluated as Python. Grammar::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expr ")" | "true" | comparison
    comparison := FEATURE op value                        op: == = != < <= > >=
                | FEATURE ["not"] "in" "[" value ("," value)* "]"
                | FEATURE ["not"] "between" value "and" value   (both ends included)
    value      := number | 'quoted' | "quoted" | bare-word    (a bare word is text: current, M4+, flat-fee-A)

Money features are written in yuan and compared in fen; ordinal features (bucket, pd_band, affordability)
compare by rank, so ``bucket >= M2`` means M2, M3 or M4+. A comparison with a missing value (a PD not
known) is false, and so is its negation: an account with no PD matches neither ``pd < 0.1`` nor
``not pd < 0.1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import polars as pl

from runoff.plan.features import FEATURES, Feature, FeatureKind, feature_names


class ExpressionError(ValueError):
    """A segment expression that does not parse or names what does not exist; the message says where."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|<=|>=|<|>|=)
      | (?P<punct>[()\[\],])
      | (?P<quoted>'[^']*'|"[^"]*")
      | (?P<number>-?\d[\d_]*(?:\.\d+)?(?![\w+\-]))
      | (?P<word>[A-Za-z_\u4e00-\u9fff][\w+\-.\u4e00-\u9fff]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "between", "true"})
_ORDER_OPS = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # op, punct, quoted, number, word, end
    text: str
    position: int  # 1-based column in the expression

    @property
    def keyword(self) -> str | None:
        return self.text.lower() if self.kind == "word" and self.text.lower() in _KEYWORDS else None


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise ExpressionError(f"unexpected character {text[column - 1]!r} at position {column}")
        kind = match.lastgroup
        assert kind is not None
        out.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


# --- the tree -------------------------------------------------------------------------------------------------------

Value = Decimal | str


@dataclass(frozen=True, slots=True)
class Compare:
    feature: Feature
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class InList:
    feature: Feature
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    feature: Feature
    low: Value
    high: Value
    negated: bool = False


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Negation:
    item: Node


@dataclass(frozen=True, slots=True)
class Always:
    """``true``: every account (a catch-all segment)."""


Node = Compare | InList | Between | AllOf | AnyOf | Negation | Always


@dataclass(frozen=True, slots=True)
class SegmentExpression:
    """A parsed condition: its source text, its tree and the features it reads."""

    text: str
    tree: Node

    @property
    def matches_everything(self) -> bool:
        return isinstance(self.tree, Always)

    def features(self) -> frozenset[str]:
        return frozenset(_features(self.tree))

    def to_polars(self) -> pl.Expr:
        """The condition as a Boolean Polars expression over the feature table (null counts as false)."""
        return _compile(self.tree).fill_null(False)


def _features(node: Node) -> list[str]:
    if isinstance(node, Compare | InList | Between):
        return [node.feature.name]
    if isinstance(node, AllOf | AnyOf):
        return [name for item in node.items for name in _features(item)]
    if isinstance(node, Negation):
        return _features(node.item)
    return []


# --- parsing --------------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, kind: str, text: str, what: str) -> _Token:
        token = self.token
        if token.kind != kind or (token.text.lower() != text):
            raise ExpressionError(f"expected {what} at position {token.position}, found {_describe(token)}")
        return self.take()

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise ExpressionError("empty expression; expected a condition such as `dpd > 30`, or `true`")
        node = self.disjunction()
        if self.token.kind != "end":
            raise ExpressionError(
                f"unexpected {_describe(self.token)} at position {self.token.position}; expected `and`, `or` or the end"
            )
        return node

    def disjunction(self) -> Node:
        items = [self.conjunction()]
        while self.token.keyword == "or":
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def conjunction(self) -> Node:
        items = [self.negation()]
        while self.token.keyword == "and":
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def negation(self) -> Node:
        token = self.token
        if token.keyword == "not":
            self.take()
            return Negation(self.negation())
        if token.kind == "punct" and token.text == "(":
            self.take()
            node = self.disjunction()
            self.expect("punct", ")", "`)`")
            return node
        if token.keyword == "true":
            self.take()
            return Always()
        return self.comparison()

    def comparison(self) -> Node:
        token = self.take()
        if token.kind != "word" or token.keyword is not None:
            raise ExpressionError(
                f"expected a feature name at position {token.position}, found {_describe(token)}; "
                f"expected one of {feature_names()}"
            )
        feature = FEATURES.get(token.text)
        if feature is None:
            raise ExpressionError(
                f"unknown feature `{token.text}` at position {token.position}; expected one of {feature_names()}"
            )
        negated = False
        if self.token.keyword == "not":
            self.take()
            negated = True
            if self.token.keyword not in ("in", "between"):
                raise ExpressionError(
                    f"expected `in` or `between` after `{feature.name} not` at position {self.token.position}, "
                    f"found {_describe(self.token)}"
                )
        word = self.token.keyword
        if word == "in":
            self.take()
            self.expect("punct", "[", "`[` to open the list")
            values = [self.value(feature)]
            while self.token.kind == "punct" and self.token.text == ",":
                self.take()
                values.append(self.value(feature))
            self.expect("punct", "]", "`,` or `]` to close the list")
            return InList(feature, tuple(values), negated)
        if word == "between":
            self.take()
            _orderable(feature, "between", self.token.position)
            low = self.value(feature)
            self.expect("word", "and", "`and` between the two ends of the range")
            high = self.value(feature)
            if _rank(feature, low) > _rank(feature, high):
                raise ExpressionError(
                    f"`{feature.name} between {low} and {high}`: the range is empty; expected the lower end first"
                )
            return Between(feature, low, high, negated)
        op_token = self.take()
        if op_token.kind != "op":
            raise ExpressionError(
                f"expected a comparison (==, !=, <, <=, >, >=, in, between) after `{feature.name}` at position "
                f"{op_token.position}, found {_describe(op_token)}"
            )
        op = "==" if op_token.text == "=" else op_token.text
        if op in _ORDER_OPS:
            _orderable(feature, op, op_token.position)
        return Compare(feature, op, self.value(feature))

    def value(self, feature: Feature) -> Value:
        token = self.take()
        numeric = feature.kind in (FeatureKind.INTEGER, FeatureKind.NUMBER, FeatureKind.MONEY)
        if token.kind == "number":
            if not numeric:
                raise ExpressionError(_wrong_value(feature, token))
            try:
                number = Decimal(token.text.replace("_", ""))
            except InvalidOperation:  # pragma: no cover - the token pattern admits only numbers
                raise ExpressionError(_wrong_value(feature, token)) from None
            if feature.kind is FeatureKind.INTEGER and number != number.to_integral_value():
                raise ExpressionError(
                    f"`{feature.name}` counts whole numbers; {token.text} at position {token.position} is not one"
                )
            if feature.kind is FeatureKind.MONEY and number != number.quantize(Decimal("0.01")):
                raise ExpressionError(
                    f"`{feature.name}` is in yuan; {token.text} at position {token.position} has more than two decimals"
                )
            return number
        if token.kind in ("quoted", "word") and token.keyword is None:
            text = token.text[1:-1] if token.kind == "quoted" else token.text
            if numeric:
                raise ExpressionError(_wrong_value(feature, token))
            if feature.vocabulary and text not in feature.vocabulary:
                raise ExpressionError(
                    f"`{feature.name}` has no value {text!r} (position {token.position}); "
                    f"expected one of {', '.join(feature.vocabulary)}"
                )
            return text
        raise ExpressionError(
            f"expected a value for `{feature.name}` at position {token.position}, found {_describe(token)}"
        )


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    return f"`{token.text}`"


def _wrong_value(feature: Feature, token: _Token) -> str:
    if feature.kind in (FeatureKind.INTEGER, FeatureKind.NUMBER, FeatureKind.MONEY):
        unit = " in yuan" if feature.kind is FeatureKind.MONEY else ""
        return f"`{feature.name}` is a number{unit}; {token.text} at position {token.position} is not"
    allowed = f"one of {', '.join(feature.vocabulary)}" if feature.vocabulary else "text"
    return f"`{feature.name}` takes {allowed}; {token.text} at position {token.position} is a number"


def _orderable(feature: Feature, op: str, position: int) -> None:
    if feature.kind in (FeatureKind.CATEGORY, FeatureKind.TEXT):
        raise ExpressionError(
            f"`{feature.name}` has no order, so `{op}` (position {position}) does not apply; use == != or in"
        )


def _rank(feature: Feature, value: Value) -> Decimal:
    if feature.kind is FeatureKind.ORDINAL:
        assert isinstance(value, str)
        return Decimal(feature.vocabulary.index(value))
    assert isinstance(value, Decimal)
    return value


def parse_expression(text: str | bool | None) -> SegmentExpression:
    """Parse a segment condition; ``None``, blank or ``true`` (YAML's boolean too) means every account."""
    if text is None or text is True or (isinstance(text, str) and text.strip() == ""):
        return SegmentExpression("true", Always())
    if not isinstance(text, str):
        raise ExpressionError(f'expected the condition as text, e.g. "dpd > 30", got {type(text).__name__}')
    return SegmentExpression(text.strip(), _Parser(text).parse())


# --- compiling ------------------------------------------------------------------------------------------------------


def _operand(feature: Feature, value: Value) -> tuple[pl.Expr, object]:
    """The column and the literal to compare it with (fen for money, ranks for ordinals)."""
    if feature.kind is FeatureKind.MONEY:
        assert isinstance(value, Decimal)
        return pl.col(feature.column), int(value * 100)
    if feature.kind is FeatureKind.ORDINAL:
        assert isinstance(value, str)
        return pl.col(feature.rank_column), feature.vocabulary.index(value)
    if feature.kind is FeatureKind.INTEGER:
        assert isinstance(value, Decimal)
        return pl.col(feature.column), int(value)
    if feature.kind is FeatureKind.NUMBER:
        assert isinstance(value, Decimal)
        return pl.col(feature.column), float(value)
    return pl.col(feature.column), value


def _compare(column: pl.Expr, op: str, literal: object) -> pl.Expr:
    lit = pl.lit(literal)
    if op == "==":
        return column == lit
    if op == "!=":
        return column != lit
    if op == "<":
        return column < lit
    if op == "<=":
        return column <= lit
    if op == ">":
        return column > lit
    return column >= lit


def _compile(node: Node) -> pl.Expr:
    if isinstance(node, Always):
        return pl.lit(True)
    if isinstance(node, Compare):
        column, literal = _operand(node.feature, node.value)
        return _compare(column, node.op, literal)
    if isinstance(node, InList):
        column = _operand(node.feature, node.values[0])[0]
        literals = [_operand(node.feature, v)[1] for v in node.values]
        hit = pl.when(column.is_null()).then(None).otherwise(column.is_in(literals))
        return ~hit if node.negated else hit
    if isinstance(node, Between):
        column, low = _operand(node.feature, node.low)
        high = _operand(node.feature, node.high)[1]
        inside = (column >= pl.lit(low)) & (column <= pl.lit(high))
        return ~inside if node.negated else inside
    if isinstance(node, AllOf):
        out = _compile(node.items[0])
        for item in node.items[1:]:
            out = out & _compile(item)
        return out
    if isinstance(node, AnyOf):
        out = _compile(node.items[0])
        for item in node.items[1:]:
            out = out | _compile(item)
        return out
    return ~_compile(node.item)
