"""The mapping file (YAML): which source column feeds which tape field and how to read it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from runoff.errors import describe_validation_error
from runoff.portfolio.tape.fields import FIELDS_BY_NAME, TAPE_FIELDS, FieldKind, TapeInvalid, TapeStatus, parse_status
from runoff.servicing.product import Method, parse_method


class AmountUnit(StrEnum):
    """The unit a source column writes money in."""

    YUAN = "yuan"  # 元, up to two decimals
    FEN = "fen"  # 分, whole numbers


class RateScale(StrEnum):
    """How a source column writes a rate: ``0.18`` (fraction) or ``18`` (percent); ``18%`` is always a percent."""

    FRACTION = "fraction"
    PERCENT = "percent"


class ColumnMap(BaseModel):
    """Where one tape field comes from and how to read it; options left out fall back to the mapping's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, description="the column's header in the file, e.g. 借据号")
    formats: tuple[str, ...] | None = Field(default=None, description="date formats (strftime), tried in order")
    unit: AmountUnit | None = None
    scale: RateScale | None = None


def _column_map(value: Any) -> Any:
    return {"source": value} if isinstance(value, str) else value


def _method(value: Any) -> Method:
    return parse_method(value)


def _status(value: Any) -> TapeStatus:
    return parse_status(value)


ISO_DATE = "%Y-%m-%d"
DEFAULT_DATE_FORMATS: tuple[str, ...] = (ISO_DATE, "%Y/%m/%d", "%Y%m%d")


class TapeMapping(BaseModel):
    """How a lender's loan tape maps onto runoff's tape fields (a YAML file, see ``examples/mappings``).

    A field not listed under ``columns`` is taken from a column with the field's own name when the file
    has one, so a tape already in runoff's vocabulary needs no mapping at all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    columns: dict[str, Annotated[ColumnMap, BeforeValidator(_column_map)]] = Field(default_factory=dict)
    date_formats: tuple[str, ...] = Field(default=DEFAULT_DATE_FORMATS, min_length=1)
    amount_unit: AmountUnit = AmountUnit.YUAN
    rate_scale: RateScale = RateScale.FRACTION
    method_aliases: dict[str, Annotated[Method, BeforeValidator(_method)]] = Field(default_factory=dict)
    status_aliases: dict[str, Annotated[TapeStatus, BeforeValidator(_status)]] = Field(default_factory=dict)
    as_of: date | None = Field(default=None, description="the date the tape describes (数据日期)")
    sheet: str | None = Field(default=None, description="Excel: the sheet to read (default: the first)")
    separator: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = Field(default="utf-8", description="CSV text encoding, e.g. utf-8 or gb18030")
    dpd_tolerance_days: int = Field(default=0, ge=0, le=31, description="allowed gap between DPD and its due date")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, ColumnMap]) -> dict[str, ColumnMap]:
        unknown = [k for k in value if k not in FIELDS_BY_NAME]
        if unknown:
            allowed = ", ".join(FIELDS_BY_NAME)
            raise ValueError(f"{', '.join(map(repr, unknown))} is not a tape field; expected one of {allowed}")
        return value

    @field_validator("date_formats")
    @classmethod
    def _formats_have_directives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in value if "%" not in f]
        if bad:
            raise ValueError(f"{bad!r} are not date formats; expected strftime patterns such as %Y/%m/%d")
        return value

    @model_validator(mode="after")
    def _one_source_per_field(self) -> TapeMapping:
        seen: dict[str, str] = {}
        for name, col in self.columns.items():
            if col.source in seen:
                raise ValueError(f"column {col.source!r} is mapped to both {seen[col.source]} and {name}")
            seen[col.source] = name
            kind = FIELDS_BY_NAME[name].kind
            if col.formats is not None and kind is not FieldKind.DATE:
                raise ValueError(f"`{name}` is not a date; `formats` applies to dates only")
            if col.unit is not None and kind is not FieldKind.AMOUNT:
                raise ValueError(f"`{name}` is not an amount; `unit` applies to amounts only")
            if col.scale is not None and kind is not FieldKind.RATE:
                raise ValueError(f"`{name}` is not a rate; `scale` applies to rates only")
        return self

    def source_of(self, name: str, headers: Sequence[str]) -> str | None:
        """The file's column that feeds field ``name``, or None when the tape does not carry it."""
        col = self.columns.get(name)
        if col is not None:
            return col.source if col.source in headers else None
        return name if name in headers else None

    def resolve(self, headers: Sequence[str], *, file: str = "tape") -> dict[str, str]:
        """Field → source column for ``headers``; refuses a tape that lacks a column the mapping or a rule needs."""
        missing_mapped = [
            f"{col.source!r} (for {name})" for name, col in self.columns.items() if col.source not in headers
        ]
        if missing_mapped:
            raise TapeInvalid(
                f"{file}: the mapping names {', '.join(missing_mapped)} but the file has no such column; "
                f"its columns are {', '.join(headers)}",
                field=next(iter(n for n, c in self.columns.items() if c.source not in headers)),
            )
        resolved = {f.name: src for f in TAPE_FIELDS if (src := self.source_of(f.name, headers)) is not None}
        absent = [f for f in TAPE_FIELDS if f.required and f.name not in resolved]
        if "annual_rate" not in resolved and "fee_rate" not in resolved:
            absent.append(FIELDS_BY_NAME["annual_rate"])
        if absent:
            names = ", ".join(f"{f.name} ({f.label_zh})" for f in absent)
            raise TapeInvalid(
                f"{file}: no column for {names}; map it in the mapping file's `columns` "
                f"(e.g. `{absent[0].name}: {absent[0].label_zh}`)",
                field=absent[0].name,
            )
        return resolved

    def date_formats_of(self, name: str) -> tuple[str, ...]:
        col = self.columns.get(name)
        return col.formats if col is not None and col.formats else self.date_formats

    def unit_of(self, name: str) -> AmountUnit:
        col = self.columns.get(name)
        return col.unit if col is not None and col.unit else self.amount_unit

    def scale_of(self, name: str) -> RateScale:
        col = self.columns.get(name)
        return col.scale if col is not None and col.scale else self.rate_scale


def parse_mapping(data: Any, *, source: str = "mapping") -> TapeMapping:
    """Validate a mapping (from YAML) as a :class:`TapeMapping`; one clear error naming the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TapeInvalid(f"{source}: expected a mapping of tape-mapping fields, got {type(data).__name__}")
    try:
        return TapeMapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise TapeInvalid(describe_validation_error(exc, source=source), field=field) from None


def load_mapping(path: Path) -> TapeMapping:
    """Read and validate a mapping YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TapeInvalid(f"mapping {path}: cannot be read ({exc.strerror})", field="mapping") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TapeInvalid(f"mapping {path}: not valid YAML ({exc})", field="mapping") from None
    return parse_mapping(data, source=f"mapping {path}")
