"""Threads: keep torch's default CPU threads only where they pay on this machine now.

Beside another job the default threads gain little and sometimes stall for seconds, so one
thread is timed against the default and the faster kept; ``recheck_threads`` repeats the check
before a later probe when the cores may have turned busy.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from auditkit.sizing.cost import _timings

#: The default threads are kept only when a pass on them is at least this much faster than
#: on one: beside another job they gain little and sometimes stall for seconds.
_THREADS_WORTH = 1.25


#: A model whose forward pass takes this long per example is checked on this many examples.
_THREADS_COSTLY_SECONDS = 0.01


_THREADS_COSTLY_EXAMPLES = 4


def choose_threads(
    adapter, x: torch.Tensor, *, small: bool, size: int = 16
) -> dict[str, Any] | None:
    """On CPU cores busy with other work, run on one thread unless more are clearly faster.

    torch's threads wait for each other at every operation; when another job holds the cores
    each wait lasts a scheduler slice, and a pass can take a hundred times longer than on one
    thread (a CIFAR-shaped ResNet-18 scan beside a 2-thread training job on 2 cores: 226 s on
    2 threads, 23 s on 1). A larger model's passes beside such a job take about as long on 2
    threads as on 1, except when they stall (a ResNet-50 at 224 px: 0.4 s, or 2.7 s). A pass
    is timed both ways (the mean of 2 timings on one thread, then of up to 4 on the default
    threads, stopping once the answer is certain); unless the
    default threads are ``_THREADS_WORTH`` times faster (an idle 2-core VM: a ResNet-18 at
    32 px 1.6×, a ResNet-50 at 224 px 2.5×; a VGG-11 at 32 px 1.1× loses a tenth on one
    thread), one thread is kept for the scan (``torch.set_num_threads``; the caller restores
    it) and the times are returned for the record. Small models are never touched (their numbers stay
    bit-identical whatever the machine does: ``small``, from ``small_model_reason``); nor is a
    GPU, or a process already on 1 thread.
    """
    default = torch.get_num_threads()
    if adapter.device.type != "cpu" or default <= 1 or small:
        return None
    from auditkit.context import diagnostic_sample_size

    sample = x[: min(size, diagnostic_sample_size(tuple(x.shape[1:])))].to(adapter.device)
    times: dict[int, list[float]] = {default: [], 1: []}
    try:
        with torch.inference_mode():
            if len(sample) > _THREADS_COSTLY_EXAMPLES:
                # A costly pass (a ResNet-50 at 224×224) is timed on a few examples: waits at
                # every operation show as well on 4 as on 16, and the check costs a quarter.
                (two,) = _timings(lambda: adapter.logits(sample[:2]), adapter.device, 1)
                if two > 2 * _THREADS_COSTLY_SECONDS:
                    sample = sample[:_THREADS_COSTLY_EXAMPLES]
            torch.set_num_threads(1)
            times[1] = _timings(lambda: adapter.logits(sample), adapter.device, 2)
            torch.set_num_threads(default)
            # Up to 4 passes on the default threads, fewer once their mean can no longer be
            # _THREADS_WORTH times faster than one thread's (a stalled pass decides at once:
            # the same choice as after all 4, without waiting through more stalls).
            most = 4 * statistics.fmean(times[1]) / _THREADS_WORTH
            while len(times[default]) < 4 and sum(times[default]) <= most:
                times[default] += _timings(lambda: adapter.logits(sample), adapter.device, 1)
    finally:
        torch.set_num_threads(default)
    # Means, not the fastest nor the median: on shared cores a pass on several threads is fast
    # whenever the other job happens to leave them all free at once, and otherwise stalls, and
    # the scan pays the average pass. A ResNet-18 kept on 2 threads by one lucky timing took
    # 95 s of a busy scan, 20 s on 1 thread; a ResNet-50 at 224 px beside a 2-thread job ran
    # 4-example passes on 2 threads in 0.4 s or in 2.7 s, on 1 thread in 0.4 s every time, and
    # the median kept 2 threads through the cost measurement (80 s of a 200 s scan).
    seconds = {k: statistics.fmean(v) for k, v in times.items()}
    if seconds[1] >= _THREADS_WORTH * seconds[default]:
        return None
    torch.set_num_threads(1)
    return {
        "threads": 1,
        "default": default,
        "seconds": {str(k): round(v, 6) for k, v in seconds.items()},
    }


@contextmanager
def one_thread() -> Iterator[None]:
    """Run on one CPU thread, then give the caller's thread count back.

    A convolution's gradient sums its terms in an order that depends on how many threads share
    the work, so the same seed trained on 2 threads ends a few ULPs away from 1 thread, and 30
    epochs of Adam grow that into different weights (23 of the demo audit's 72 metrics moved).
    On one thread the sums, and so the model, are the same on every machine whatever its core
    count; a network this small trains as fast on one thread as on several.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
