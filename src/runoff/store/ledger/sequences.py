"""Ids handed out before rows are written, so related rows (entry → lines, payment → allocations) go in one batch.

PostgreSQL draws them from the table's sequence (safe under concurrency); SQLite takes the next
ids after the largest, which is safe because every SQLite writer holds the database's write lock
(``BEGIN IMMEDIATE``) for its whole transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Table, func, select, text


def reserve_id_blocks(conn: Connection, counts: Mapping[Table, int]) -> dict[str, list[int]]:
    """Fresh ids for several tables in one round trip: table name → ``counts[table]`` ids."""
    wanted = {t: n for t, n in counts.items() if n > 0}
    out: dict[str, list[int]] = {t.name: [] for t in counts}
    if not wanted:
        return out
    if conn.dialect.name != "postgresql":
        for table, n in wanted.items():
            out[table.name] = reserve_ids(conn, table, n)
        return out
    parts: list[str] = []
    params: dict[str, object] = {}
    for k, (table, n) in enumerate(wanted.items()):
        # The sequence is looked up once (a materialised CTE), not per row: per row it costs more than the nextval itself.
        parts.append(
            f"SELECT CAST(:t{k} AS TEXT), (WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:t{k}, 'id') AS regclass) AS seq)"
            f" SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, :n{k}))"
        )
        params[f"t{k}"] = table.name
        params[f"n{k}"] = n
    for name, values in conn.execute(text(" UNION ALL ".join(parts)), params):
        out[name] = [int(v) for v in values]
    return out


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` fresh values of ``table.id`` for this transaction."""
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        return reserve_id_blocks(conn, {table: count})[table.name]
    start = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1
    return list(range(start, start + count))
