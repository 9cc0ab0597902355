"""The executor: the same job gives the same answer in-process and on a Dask LocalCluster with 2 workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runoff.app import book
from runoff.errors import ConfigError
from runoff.portfolio.generator import BookConfig
from runoff.store.executors import run_partitions, scheduler_address
from runoff.store.workspace import Workspace

CONFIG = BookConfig(customers=9000, months=6, seed=21, blocks_per_partition=1)  # three partitions


def test_in_process_merges_results_in_partition_order_and_reports_progress() -> None:
    seen: list[tuple[int, int]] = []
    result = run_partitions(str, [3, 1, 2], "".join, progress=lambda done, total: seen.append((done, total)))
    assert result == "312"
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        ("tcp://a:1", {"RUNOFF_DASK_SCHEDULER": "tcp://b:2"}, "tcp://a:1"),
        (None, {"RUNOFF_DASK_SCHEDULER": "tcp://b:2"}, "tcp://b:2"),
        (None, {}, None),
    ],
    ids=["flag", "environment", "in-process"],
)
def test_scheduler_address_flag_then_environment(explicit, env, expected) -> None:
    assert scheduler_address(explicit, env=env) == expected


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="scheduler"):
        run_partitions(str, [1], list, scheduler="tcp://127.0.0.1:9", connect_timeout=1.0)


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_generation_on_dask_writes_the_same_bytes_as_in_process(tmp_path: Path, cluster_address: str) -> None:
    local = Workspace.init(tmp_path / "local")
    remote = Workspace.init(tmp_path / "dask")
    a = book.generate_book(local, CONFIG)
    b = book.generate_book(remote, CONFIG, scheduler=cluster_address)
    assert a.totals == b.totals and a.partitions == b.partitions == 3
    for table in ("loans", "payments", "performance"):
        for p in range(3):
            assert local.partition_path(table, p).read_bytes() == remote.partition_path(table, p).read_bytes()


def test_info_on_dask_equals_info_in_process(tmp_path: Path, cluster_address: str) -> None:
    ws = Workspace.init(tmp_path)
    book.generate_book(ws, CONFIG)
    here = book.book_info(ws)
    there = book.book_info(ws, scheduler=cluster_address)
    assert here.as_dict() == there.as_dict()
    assert here.row_counts["loans"] > 0
    assert book.book_calibration(ws).figures() == book.book_calibration(ws, scheduler=cluster_address).figures()
