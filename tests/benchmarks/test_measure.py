import time

from benchmarks.measure import Sampler, median_seconds


def test_median_seconds_warms_up_once_then_takes_the_median():
    figures = iter([100.0, 3.0, 1.0, 2.0])
    assert median_seconds(lambda: next(figures), runs=3) == 2.0


def test_the_sampler_brackets_the_block_and_keeps_its_peak():
    values = iter(range(1000))
    with Sampler(lambda: next(values), interval=0.001) as sampler:
        time.sleep(0.05)
    times = [t for t, _ in sampler.samples]
    assert len(sampler.samples) >= 3 and times == sorted(times)
    assert sampler.samples[0][1] == 0 and sampler.peak == sampler.samples[-1][1]
