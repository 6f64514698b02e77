"""Shared fixtures. Random tests draw fresh inputs on every run, from a seed that is shown.

One base seed per session, taken from $COURSE_TEST_SEED or else from the OS, is printed in the
header. Every test gets its own seed, derived from the base seed and the test's id; before the
test runs, torch's, numpy's and Python's global generators are seeded with it, and the `gen`
(torch) and `rng` (numpy) fixtures start from it. A failing test's report shows its seed and the
command that repeats the run exactly:

    COURSE_TEST_SEED=<base> python -m pytest 'tests/test_x.py::test_y'
"""

from __future__ import annotations

import hashlib
import os
import random
import signal

import numpy as np
import pytest
import torch

from course_lib import exercises

_ENV = "COURSE_TEST_SEED"


def _base_seed() -> int:
    raw = os.environ.get(_ENV, "").strip()
    if not raw:
        return int.from_bytes(os.urandom(4), "little")
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"{_ENV} must be an integer, got {raw!r}") from None


BASE_SEED = _base_seed()

# The Ctrl-C tests need SIGINT delivered. A shell without job control starts background commands
# with SIGINT ignored, and every child process would inherit that; the course's training command
# rightly leaves an ignored signal ignored (as under nohup). Restore the defaults for the test run.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_seed(nodeid: str) -> int:
    """The seed of one test: a hash of the session's base seed and the test's id (31 bits)."""
    digest = hashlib.sha256(f"{BASE_SEED}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


test_seed.__test__ = False  # a helper, not a test


def pytest_report_header(config: pytest.Config) -> str:
    return f"course test seed: {_ENV}={BASE_SEED}"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(f"course test seed: {_ENV}={BASE_SEED}")


@pytest.fixture(autouse=True)
def _seed_everything(request: pytest.FixtureRequest):
    """Seed the global generators for this test and record the seed for its report."""
    seed = test_seed(request.node.nodeid)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    request.node.user_properties.append(("seed", seed))
    exercises.seed_source = random.Random(seed)  # the checkers' "fresh" inputs follow the test's seed
    yield seed
    exercises.seed_source = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seed = dict(item.user_properties).get("seed")
        if seed is not None:
            report.sections.append(
                (
                    "random seed",
                    f"this test ran with seed {seed}; repeat it with\n"
                    f"  {_ENV}={BASE_SEED} python -m pytest '{item.nodeid}'",
                )
            )


@pytest.fixture
def gen(_seed_everything: int) -> torch.Generator:
    """A torch generator seeded with this test's seed (new inputs every run, shown on failure)."""
    return torch.Generator().manual_seed(_seed_everything)


@pytest.fixture
def rng(_seed_everything: int) -> np.random.Generator:
    """A numpy generator seeded with this test's seed."""
    return np.random.default_rng(_seed_everything)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models: one torch thread is fastest, and robust on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
