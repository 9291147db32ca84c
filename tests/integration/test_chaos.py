"""The crash campaign, short: three live daemons under a random workload, a daemon SIGKILLed and
restarted 12 times (half the time one writing a temp file). The full 200-kill run is
``bench/chaos.py crash``; shoal.testing.chaos has the workload and the checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.testing import chaos
from shoal.testing.cluster import Cluster


@pytest.mark.timeout(300)
def test_crash_campaign_short(tmp_path: Path) -> None:
    with Cluster(tmp_path / "c", group_extra="auto younger;") as c:
        report = chaos.run_campaign(c, chaos.crash_fault(c), lambda: None, campaign="crash", rounds=12, seed=11)
    print(chaos.format_report(report))
    assert report.failures == 0, chaos.format_report(report)
    assert report.faults == 12 and report.writes > 100 and report.samples > 1000
    assert report.shared_versions > 0 and report.converged_s is not None
