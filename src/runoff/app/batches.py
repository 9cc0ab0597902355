"""Posting a batch chunk by chunk: on PostgreSQL two connections overlap, in the batch's order.

A batch use case (payments today) hands :func:`post_chunks` its chunks and a function that posts one
chunk in its own transaction. On SQLite (one writer at a time) or with ``overlap=False`` the chunks
post one after another on the caller's unit of work. On PostgreSQL two connections take alternate
chunks, so that while one chunk's rows are written and committed in the database the next chunk is
read and computed in Python; :class:`Turn` keeps the outcome identical to posting the chunks in order.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from runoff.store.ledger.unit_of_work import UnitOfWork

THREAD_NAME = "runoff-batch"
"""The overlapped workers' thread names (``runoff-batch-0``, ``runoff-batch-1``)."""

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

PostChunk = Callable[[Sequence[Item], UnitOfWork, "Turn | None"], list[Outcome]]
"""Posts one chunk in its own transaction on the given unit of work, calling the turn's hooks (if any)."""


class Turn:
    """Where a chunk waits for the chunk before it, so that an overlapped batch posts as a sequential one would.

    Chunk k takes its locks only once chunk k − 1 holds its own (a later chunk sharing a loan then
    waits for the earlier chunk's commit and sees what it wrote: postings on one loan apply in batch
    order), and writes only once chunk k − 1 has committed (a key repeated across chunks is posted by
    its first occurrence and refused or replayed on the later one).
    """

    def __init__(
        self, k: int, locked: list[threading.Event], committed: list[threading.Event], stop: threading.Event
    ) -> None:
        self._previous = (locked[k - 1], committed[k - 1]) if k else None
        self._locked = locked[k]
        self._stop = stop

    def before_locks(self) -> None:
        if self._previous is not None:
            self._wait(self._previous[0])

    def after_locks(self) -> None:
        self._locked.set()

    def before_writes(self) -> None:
        if self._previous is not None:
            self._wait(self._previous[1])

    def _wait(self, event: threading.Event) -> None:
        while not event.wait(0.2):
            if self._stop.is_set():
                raise _Stopped


class _Stopped(Exception):
    """The other worker failed: this one gives up its chunk (rolled back) instead of waiting forever."""


def post_chunks(
    chunks: Sequence[Sequence[Item]],
    post_chunk: PostChunk[Item, Outcome],
    *,
    uow: UnitOfWork,
    progress: Callable[[int], None] | None = None,
    overlap: bool = True,
) -> list[Outcome]:
    """Every chunk posted by ``post_chunk``; the outcomes in batch order. ``progress``: each committed chunk's size."""
    with _long_lived_objects_frozen():
        if overlap and uow.dialect == "postgresql" and len(chunks) > 1:
            return _post_overlapped(chunks, post_chunk, uow=uow, progress=progress)
        outcomes: list[Outcome] = []
        for chunk in chunks:
            outcomes.extend(post_chunk(chunk, uow, None))
            if progress is not None:
                progress(len(chunk))
        return outcomes


def _post_overlapped(
    chunks: Sequence[Sequence[Item]],
    post_chunk: PostChunk[Item, Outcome],
    *,
    uow: UnitOfWork,
    progress: Callable[[int], None] | None,
) -> list[Outcome]:
    """Two connections take alternate chunks; the caller's thread reports progress and raises a worker's error."""
    locked = [threading.Event() for _ in chunks]
    committed = [threading.Event() for _ in chunks]
    stop = threading.Event()
    results: list[list[Outcome] | None] = [None] * len(chunks)
    errors: list[BaseException] = []
    finished = threading.Condition()

    def worker(first: int, unit: UnitOfWork) -> None:
        try:
            for k in range(first, len(chunks), 2):
                try:
                    results[k] = post_chunk(chunks[k], unit, Turn(k, locked, committed, stop))
                finally:
                    locked[k].set()
                    committed[k].set()
                with finished:
                    finished.notify_all()
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the caller's thread, which raises it
            errors.append(exc)
            stop.set()
            with finished:
                finished.notify_all()

    units = (uow, uow.sibling())
    threads = [
        threading.Thread(target=worker, args=(i, unit), name=f"{THREAD_NAME}-{i}", daemon=True)
        for i, unit in enumerate(units)
    ]
    for thread in threads:
        thread.start()
    reported = 0
    try:
        with finished:
            while reported < len(chunks) and not errors:
                if results[reported] is None:
                    finished.wait(0.2)
                    continue
                if progress is not None:
                    progress(len(chunks[reported]))
                reported += 1
    except BaseException:
        stop.set()  # the caller's progress callback failed: the workers stop before their next chunk
        raise
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return [outcome for chunk in results if chunk is not None for outcome in chunk]


@contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects that existed before the batch.

    A batch allocates millions of short-lived objects; each of CPython's full collections then walked
    every long-lived object of the process (modules, metadata, the caller's data) and took about a
    third of the batch's CPU. ``gc.freeze`` sets those aside for the batch; they are handed back after.
    Left alone when the application froze objects itself or turned the collector off.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
