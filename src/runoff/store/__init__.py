"""Adapters for storage: the ledger (SQLAlchemy 2 + Alembic) and, later, the Parquet workspace and model store."""
