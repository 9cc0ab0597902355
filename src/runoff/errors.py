"""One error hierarchy with stable codes; each edge (CLI, web) renders it once.

A message says what was expected and what came, e.g.
``"`term_months`: 0 is not allowed; expected an integer from 1 to 60"``.
"""

from __future__ import annotations

from typing import Any


class RunoffError(Exception):
    """Base of every error a user can cause; ``code`` is stable across releases."""

    code: str = "runoff.error"
    exit_code: int = 2

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        rule_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.rule_id = rule_id
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape every edge uses for an error."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.rule_id is not None:
            out["rule_id"] = self.rule_id
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(RunoffError):
    """A value given by the user is out of range or of the wrong kind."""

    code = "input.invalid"


class ProductInvalid(InvalidInput):
    """A product file does not validate."""

    code = "product.invalid"


class ScheduleInvalid(InvalidInput):
    """Terms that cannot produce a schedule (zero term, negative principal, ...)."""

    code = "schedule.invalid"


class NotFound(RunoffError):
    """A loan, customer, payment or file that does not exist."""

    code = "not_found"


class Conflict(RunoffError):
    """The request contradicts what is already recorded (idempotency key reuse, reversed twice, ...)."""

    code = "conflict"


class IdempotencyConflict(Conflict):
    """The same idempotency key was used for a different payment."""

    code = "payment.idempotency_conflict"


class ComplianceBlocked(RunoffError):
    """A rule refused an action; ``rule_id`` names it."""

    code = "compliance.blocked"


class ConfigError(RunoffError):
    """Settings, workspace or environment are not usable."""

    code = "config.invalid"


class InvariantBroken(RunoffError):
    """A ledger invariant does not hold (found by ``runoff ledger verify``)."""

    code = "ledger.invariant_broken"
    exit_code = 1


def field_of_validation_error(exc: Any) -> str | None:
    """The dotted path of the first failing field, or the backticked name a model-level check starts with."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    if loc:
        return loc
    msg = str(first.get("msg", "")).removeprefix("Value error, ")
    if msg.startswith("`") and "`" in msg[1:]:
        return msg[1 : msg.index("`", 1)]
    return None


def describe_validation_error(exc: Any, *, source: str) -> str:
    """Turn a pydantic ``ValidationError`` into one readable sentence per problem.

    Each line names the dotted field path, the value that came and what is allowed.
    """
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        got = err.get("input")
        got_txt = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        # model-level checks already name their field in backticks at the start of the message
        lines.append(f"{msg}" if not loc else f"`{loc}`: {msg}{got_txt}")
    return f"{source}: " + "; ".join(lines)
