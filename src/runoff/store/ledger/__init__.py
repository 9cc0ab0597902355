"""The ledger (账本): the system of record for loans, schedules, payments, the double-entry journal and the audit log.

Amounts are integer minor units (fen) in ``BigInteger`` columns named ``*_fen``; servicing code sees
``Decimal`` through :mod:`runoff.store.ledger.repository`. The schema is SQLAlchemy Core
(:mod:`runoff.store.ledger.models`), created and evolved by the Alembic migrations shipped in
``runoff/store/migrations``.
"""
