"""Timing and sampling shared by the benchmarks: medians over runs, and a thread that samples a
figure (RSS, output lines) while the timed work runs."""

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any


def median_seconds(measure: Callable[[], float], runs: int) -> float:
    """Median of `runs` measurements after one untimed warm-up; `measure` returns the seconds
    of one run, so that it can leave its own set-up (building docs) out of the clock."""
    measure()
    return statistics.median(measure() for _ in range(runs))


class Sampler:
    """Calls `read` every `interval` seconds in a thread while the `with` block runs, keeping
    `(perf_counter time, value)` pairs; one sample on entry and one on exit bracket the block.

    torch and onnxruntime release the GIL in their kernels, so the thread keeps sampling
    while a forward pass runs.
    """

    def __init__(self, read: Callable[[], float], interval: float) -> None:
        self.read, self.interval = read, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        self.samples.append((time.perf_counter(), self.read()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @property
    def peak(self) -> float:
        return max(value for _, value in self.samples)

    def __enter__(self) -> "Sampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
