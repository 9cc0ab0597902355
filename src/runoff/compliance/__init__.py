"""runoff.compliance: rule packs as data (CN, US, EU, UK) and the one engine that checks plans, offers,
notices and collection contacts against the rules that bind a lender, with citations and confirmation status.

The public API lives in :mod:`runoff.compliance.engine` (checks), :mod:`runoff.compliance.facts` (inputs),
:mod:`runoff.compliance.profile` (the lender), :mod:`runoff.compliance.rules` (packs) and
:mod:`runoff.compliance.findings` (outputs). Nothing is loaded at import.
"""
