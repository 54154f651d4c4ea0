"""Timed steps (wall time, CPU time, page faults), their statistics and peak memory."""
from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch


def synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_steps(step: Callable[[], None], iters: int, warmup: int, device: str = 'cpu',
               usage: Optional[List[Dict[str, float]]] = None) -> List[float]:
    """Run ``warmup`` untimed then ``iters`` timed steps; seconds per step.

    ``usage``, if given, receives per timed step the process's ``user_s`` and
    ``sys_s`` CPU seconds (all threads; less sensitive than the wall time to
    other programs taking turns on the cores) and its ``minor_faults`` (pages
    the kernel had to map: freshly allocated memory touched for the first time).
    """
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(iters):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        if usage is not None:
            after = resource.getrusage(resource.RUSAGE_SELF)
            usage.append(dict(user_s=after.ru_utime - before.ru_utime,
                              sys_s=after.ru_stime - before.ru_stime,
                              minor_faults=after.ru_minflt - before.ru_minflt))
    return times


def cpu_seconds(usage: List[Dict[str, float]]) -> List[float]:
    """User + system seconds per step of a :func:`time_steps` ``usage`` list."""
    return [u['user_s'] + u['sys_s'] for u in usage]


def usage_summary(usage: List[Dict[str, float]]) -> Dict[str, float]:
    """Medians of the per-step system seconds and minor page faults."""
    return dict(sys_s=round(statistics.median(u['sys_s'] for u in usage), 4),
                minor_faults=statistics.median(u['minor_faults'] for u in usage))


def summarize_times(times: List[float]) -> dict:
    """Median, min, max and quartiles (seconds) of the step times."""
    ordered = sorted(times)
    if len(ordered) > 1:
        p25, _, p75 = statistics.quantiles(ordered, n=4, method='inclusive')
    else:
        p25 = p75 = ordered[0]
    return dict(median=statistics.median(ordered), min=ordered[0], max=ordered[-1],
                p25=p25, p75=p75, all=times)


class PeakMemory:
    """Peak memory of a span of the process (MiB).

    CPU: the peak resident set size (``VmHWM``), reset at :meth:`reset`
    through ``/proc/self/clear_refs`` where Linux allows it, else the peak
    over the whole process (``getrusage``). CUDA: the allocator's peak of
    allocated (and reserved) memory.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.scope = 'process'

    def reset(self) -> None:
        if self.device.startswith('cuda'):
            torch.cuda.reset_peak_memory_stats()
            self.scope = 'since_reset'
            return
        try:
            with open('/proc/self/clear_refs', 'w') as file:
                file.write('5')  # resets the peak RSS to the current RSS
            self.scope = 'since_reset'
        except OSError:
            self.scope = 'process'

    @staticmethod
    def _status_mb(field: str) -> Optional[float]:
        try:
            with open('/proc/self/status') as file:
                for line in file:
                    if line.startswith(field + ':'):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def current_mb(self) -> Optional[float]:
        if self.device.startswith('cuda'):
            return torch.cuda.memory_allocated() / 2**20
        return self._status_mb('VmRSS')

    def peak(self) -> dict:
        if self.device.startswith('cuda'):
            return dict(kind='cuda_max_allocated', scope=self.scope,
                        peak_mb=torch.cuda.max_memory_allocated() / 2**20,
                        reserved_peak_mb=torch.cuda.max_memory_reserved() / 2**20)
        peak = self._status_mb('VmHWM') if self.scope == 'since_reset' else None
        if peak is None:
            self.scope = 'process'
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return dict(kind='cpu_peak_rss', scope=self.scope, peak_mb=peak)


def paired_ratios(times: Dict[str, List[float]], baseline: str) -> Dict[str, dict]:
    """Per round ``baseline time / path time``, summarised (median, quartiles, range).

    ``times`` holds one value per round for every path, rounds aligned (the
    interleaved benchmark runs one step of every path per round, so a slow
    spell of the machine hits the paths of a round alike).
    """
    out = {}
    for path, values in times.items():
        ratios = [base / value for base, value in zip(times[baseline], values)]
        stats = summarize_times(ratios)
        out[path] = {k: round(v, 3) for k, v in stats.items() if k != 'all'}
    return out


def rounded_stats(values: List[float]) -> dict:
    """:func:`summarize_times` rounded to 4 decimals."""
    return {k: [round(t, 4) for t in v] if k == 'all' else round(v, 4)
            for k, v in summarize_times(values).items()}


def load_average() -> Optional[List[float]]:
    """1, 5 and 15 minute load averages (None where unavailable)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
