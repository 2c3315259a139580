"""Training words per second as the component sees them: the time spent in its own `update`
and `finish_update`, so dev evaluations, corpus reading and other components don't count."""

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Throughput:
    """Words and seconds of training so far."""

    def __init__(self) -> None:
        self.words = 0
        self.seconds = 0.0

    @contextmanager
    def measure(self, words: int = 0) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.words += words

    @property
    def words_per_second(self) -> float | None:
        return self.words / self.seconds if self.seconds > 0 else None
