"""Where per-partition work runs: in this process by default, on a Dask distributed cluster on request.

A job is a per-partition function (one partition in, a partial result out) and a merge of the
partial results, taken in partition order, so the answer does not depend on where or in which
order the partitions ran. The cluster is Dask's (``dask.distributed.Client``); runoff adds no
cluster code of its own. The function must be importable by the workers (a module-level function).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import import_module
from typing import Any, TypeVar

from runoff.config import Settings
from runoff.errors import ConfigError

P = TypeVar("P")
T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "RUNOFF_DASK_SCHEDULER"


def scheduler_address(explicit: str | None = None, *, env: Mapping[str, str] | None = None) -> str | None:
    """The Dask scheduler to use: ``--scheduler``, else ``RUNOFF_DASK_SCHEDULER``, else none (in-process)."""
    if explicit:
        return explicit
    return Settings.from_environ(env).dask_scheduler or None


def run_partitions(
    fn: Callable[[P], T],
    partitions: Iterable[P],
    merge: Callable[[Sequence[T]], R],
    *,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    connect_timeout: float = 10.0,
) -> R:
    """Run ``fn`` on every partition and ``merge`` the results (in partition order).

    ``scheduler`` is a Dask scheduler address (``tcp://host:8786``); ``None`` runs in this process,
    one partition at a time, so memory holds one partition's data. ``progress(done, total)`` is
    called after each partition.
    """
    items = list(partitions)
    total = len(items)
    if scheduler is None:
        results: list[T] = []
        for k, item in enumerate(items, start=1):
            results.append(fn(item))
            if progress is not None:
                progress(k, total)
        return merge(results)
    return merge(_run_on_dask(fn, items, scheduler, progress, connect_timeout))


def _run_on_dask(
    fn: Callable[[P], T],
    items: list[P],
    scheduler: str,
    progress: Callable[[int, int], None] | None,
    connect_timeout: float,
) -> list[T]:
    distributed: Any = import_module("dask.distributed")  # loaded on use: in-process runs never import Dask
    try:
        client = distributed.Client(scheduler, timeout=f"{connect_timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"`scheduler`: cannot reach the Dask scheduler at {scheduler!r} ({exc}); "
            f"expected an address such as tcp://host:8786, or leave --scheduler and {SCHEDULER_ENV} unset",
            field="scheduler",
        ) from None
    try:
        futures = client.map(fn, items, pure=False)
        if progress is not None:
            for k, _ in enumerate(distributed.as_completed(futures), start=1):
                progress(k, len(items))
        results: list[T] = client.gather(futures)
        return results
    finally:
        client.close()
