"""runoff: plan, simulate and run the wind-down of a consumer installment credit product."""

__version__ = "0.1.0"
