"""Loan-tape import rules (借据明细导入): the mapping from a lender's columns to runoff's, conversions, checks.

A loan tape is one row per loan (借据) as the lender exports it: Chinese headers (借据号, 客户号, 放款日期,
本金, 逾期天数 ...), dates as ``2024/01/31`` or ``20240131``, amounts in yuan or fen, methods as 等额本息.
A :class:`TapeMapping` (YAML, :mod:`.mapping`) says which source column feeds which tape field
(:mod:`.fields`) and how to read it; :func:`convert_tape` (:mod:`.convert`) turns the raw columns into typed
ones, and :func:`check_tape` (:mod:`.rules`) runs every rule as a vectorized Polars expression, so a million
rows are checked in one pass with no Python loop over rows. Ids are the lender's references (借据号 ``DK20240131000123``) until :func:`identify` (:mod:`.ids`)
gives accepted rows the book's Int64 ids (surrogate keys, 代理键), keeping each reference beside its id.
:mod:`.book` turns accepted rows into the
book's ``loans`` rows and positions, and a book back into a tape (round trips, example tapes).

Each rejected row is reported once, with the FIRST rule it breaks (rules run in the order
:func:`tape_rules` lists them: types, required fields, ranges, dates, balances, DPD, duplicates,
references) as its ``column``/``reason``/``message``, and every rule it breaks in ``reasons``
(``column:reason``) so a user fixing the row sees all problems at once. Row numbers are 1-based data rows
as in the file: data row 1 is the first row after the header (in Excel, sheet row 2).

Pure: frames in, frames out; reading files, the workspace and the ledger live in ``runoff.app.tape_import``.
"""

from runoff.portfolio.tape.book import (
    METHOD_NAMES_ZH,
    POSITION_SCHEMA,
    STATUS_NAMES_ZH,
    LedgerOpening,
    book_loans,
    ledger_opening,
    tape_from_book,
    tape_in_source_columns,
    tape_positions,
    tape_products,
)
from runoff.portfolio.tape.convert import BAD, SRC, canonical_ref, convert_tape, read_ids
from runoff.portfolio.tape.fields import (
    DTYPES,
    FIELDS_BY_NAME,
    ID_DTYPE,
    MAX_REF_LENGTH,
    REF_DTYPE,
    REF_FIELDS,
    ROW,
    STATUS_ALIASES,
    TAPE_FIELDS,
    FieldKind,
    TapeField,
    TapeInvalid,
    TapeStatus,
    parse_status,
)
from runoff.portfolio.tape.ids import (
    ID_MAP_SCHEMA,
    REF_COLUMNS,
    Identified,
    assign_ids,
    empty_id_map,
    identify,
    refs_of_ids,
    whole_number_id,
)
from runoff.portfolio.tape.mapping import (
    DEFAULT_DATE_FORMATS,
    AmountUnit,
    ColumnMap,
    RateScale,
    TapeMapping,
    load_mapping,
    parse_mapping,
)
from runoff.portfolio.tape.rules import (
    REJECTION_SCHEMA,
    Reason,
    TapeCheck,
    TapeRule,
    check_tape,
    quarantine_rows,
    tape_rules,
)

__all__ = [
    "BAD",
    "DEFAULT_DATE_FORMATS",
    "DTYPES",
    "FIELDS_BY_NAME",
    "ID_DTYPE",
    "ID_MAP_SCHEMA",
    "MAX_REF_LENGTH",
    "METHOD_NAMES_ZH",
    "POSITION_SCHEMA",
    "REF_COLUMNS",
    "REF_DTYPE",
    "REF_FIELDS",
    "REJECTION_SCHEMA",
    "ROW",
    "SRC",
    "STATUS_ALIASES",
    "STATUS_NAMES_ZH",
    "TAPE_FIELDS",
    "AmountUnit",
    "ColumnMap",
    "FieldKind",
    "Identified",
    "LedgerOpening",
    "RateScale",
    "Reason",
    "TapeCheck",
    "TapeField",
    "TapeInvalid",
    "TapeMapping",
    "TapeRule",
    "TapeStatus",
    "assign_ids",
    "book_loans",
    "canonical_ref",
    "check_tape",
    "convert_tape",
    "empty_id_map",
    "identify",
    "ledger_opening",
    "load_mapping",
    "parse_mapping",
    "parse_status",
    "quarantine_rows",
    "read_ids",
    "refs_of_ids",
    "tape_from_book",
    "tape_in_source_columns",
    "tape_positions",
    "tape_products",
    "tape_rules",
    "whole_number_id",
]
