"""The partition campaign, short: three live daemons in network namespaces under a random workload;
links cut six times, each kind twice (one pair, one node from both others, a three-way split), healed
after up to 3 s. The full 50-cut run is ``bench/chaos.py partition``. Root only."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.testing import chaos
from shoal.testing.netns import NetnsCluster, available

pytestmark = [pytest.mark.netns, pytest.mark.skipif(available() is not None, reason=available() or "")]


@pytest.mark.timeout(400)
def test_partition_campaign_short(tmp_path: Path) -> None:
    c = NetnsCluster(tmp_path / "c", group_extra="auto younger;")
    try:
        report = chaos.run_campaign(
            c,
            chaos.partition_fault(c, kinds=chaos.PARTITIONS),
            c.heal_all,
            campaign="partition",
            rounds=6,
            seed=5,
        )
    finally:
        c.close()
    print(chaos.format_report(report))
    assert report.failures == 0, chaos.format_report(report)
    assert report.notes_counts == dict.fromkeys(chaos.PARTITIONS, 2)
    assert report.writes > 100 and report.samples > 1000 and report.converged_s is not None
