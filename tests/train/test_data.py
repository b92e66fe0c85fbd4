"""Batches balanced per subject."""

from braindecode_kit.train import BalancedBatchSampler


def test_balanced_sampler_draws_equally_per_subject():
    s = BalancedBatchSampler([10, 100, 37], batch_size=9, steps_per_epoch=20, seed=0)
    offsets = [0, 10, 110, 147]
    for batch in s:
        counts = [sum(offsets[k] <= i < offsets[k + 1] for i in batch) for k in range(3)]
        assert counts == [3, 3, 3]
    # small subject cycles through all its trials; order depends on (seed, epoch) only
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first
    seen = {i for b in first for i in b if i < 10}
    assert seen == set(range(10))
