"""Loan maths: products, schedules, APR, allocation, delinquency, penalties and quotes (pure, Decimal)."""
