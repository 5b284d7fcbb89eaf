"""What the benchmark scripts share about their processes: a free loopback port,
and the peak resident set (VmHWM) read from /proc."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The process's direct children."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    except FileNotFoundError:
        pass
    return children


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += child_pids(p)
    return pids


def peak_rss_mb(pids: Iterable[int]) -> float:
    """The largest VmHWM (peak resident set) among these processes, in MB."""
    peak = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except FileNotFoundError:
            pass
    return peak / 1024
