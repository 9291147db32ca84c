"""The seeded fuzzers (shoal.testing.fuzz) against the decoders, the session state machine, received path
names, the config parser, and the serving side (hostile content and index requests against a real tree
and database: no byte outside the root leaves). The default suite runs a short pass with a seed per run
of CI; ``-m slow`` runs the full counts: 1,000,000 inputs each for frames, sessions and paths, 100,000 for the config
parser, 200,000 for serving. A failure prints the seed, the index and the input, enough to replay it."""

from __future__ import annotations

import os

import pytest

from shoal.testing.fuzz import FUZZERS, Report

SHORT = {"frames": 40_000, "sessions": 20_000, "paths": 40_000, "config": 5_000, "serving": 10_000}
FULL = {"frames": 1_000_000, "sessions": 1_000_000, "paths": 1_000_000, "config": 100_000, "serving": 200_000}
# A fixed seed by default (repeatable); SHOAL_FUZZ_SEED picks others (bench/fuzz.py --seed does too).
SEED = int(os.environ.get("SHOAL_FUZZ_SEED", "20261121"))


def check(report: Report, inputs: int) -> None:
    shown = "\n".join(f"  seed {SEED} input #{f.index}: {f.error}\n    {f.data!r:.400}" for f in report.failures)
    assert report.failed == 0, f"{report.target}: {report.failed} of {report.inputs} inputs failed\n{shown}"
    assert report.inputs == inputs
    # the corpus is reaching both sides: some inputs pass and some are refused
    assert report.accepted > 0 and report.refused > 0, report


@pytest.mark.parametrize("target", sorted(SHORT))
def test_fuzz_short(target: str) -> None:
    check(FUZZERS[target](SHORT[target], SEED), SHORT[target])


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("target", sorted(FULL))
def test_fuzz_full(target: str) -> None:
    check(FUZZERS[target](FULL[target], SEED), FULL[target])
