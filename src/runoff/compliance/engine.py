"""The one rule engine: one entry point for plan checks, offer checks, notice checks and live contact checks.

Select the rules that bind a lender profile on a date (:func:`select_rules`), then check facts:
:func:`check_offer` / :func:`check_offers_frame` (a million offers as Polars expressions),
:func:`check_notice`, :func:`check_contacts` (a batch, because frequencies count across contacts),
:func:`check_plan_facts`, and :func:`retention_floors`. Every check takes explicit dates or timestamps
(never the clock) and returns findings; :func:`require_allowed` turns blocking findings into a refusal at
execution time (an offer acceptance, a notice send, a contact log) with the rule id in the error.
"""

from __future__ import annotations

from runoff.compliance.contacts import check_contacts
from runoff.compliance.findings import Finding, require_allowed, sort_findings
from runoff.compliance.frame import check_offers_frame
from runoff.compliance.notices import check_notice
from runoff.compliance.offers import check_offer
from runoff.compliance.plans import check_plan_facts
from runoff.compliance.retention import RetentionRequirement, retention_floors
from runoff.compliance.selection import RuleBook, select_rules

__all__ = [
    "Finding",
    "RetentionRequirement",
    "RuleBook",
    "check_contacts",
    "check_notice",
    "check_offer",
    "check_offers_frame",
    "check_plan_facts",
    "require_allowed",
    "retention_floors",
    "select_rules",
    "sort_findings",
]
