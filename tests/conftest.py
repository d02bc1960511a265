"""Shared fixtures: replayable random seeds."""

import os
import random

import pytest

#: One base seed per session, printed in the header; SYSTOLIX_SEED=<n> replays a run.
BASE_SEED = int(os.environ.get("SYSTOLIX_SEED", random.SystemRandom().randrange(2**31)))


def pytest_report_header(config):
    return f"systolix random seed: {BASE_SEED} (replay with SYSTOLIX_SEED={BASE_SEED})"


@pytest.fixture
def seed(request):
    """A per-test seed derived from the session seed and the test's id (stable on replay)."""
    s = (BASE_SEED * 1_000_003 + sum(map(ord, request.node.nodeid))) % 2**31
    print(f"seed {s} (session SYSTOLIX_SEED={BASE_SEED})")
    return s


#: Test levels (see pyproject.toml): every test declares at least one, by module or decorator.
LEVELS = ("model", "amaranth", "rtl", "toolchain")


def pytest_collection_modifyitems(config, items):
    missing = [item.nodeid for item in items
               if not any(item.get_closest_marker(level) for level in LEVELS)]
    if missing:
        raise pytest.UsageError(f"tests without a level marker ({', '.join(LEVELS)}): "
                                + ", ".join(missing[:5]))
