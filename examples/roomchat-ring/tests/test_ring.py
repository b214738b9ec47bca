"""roomchat's backend suite, run against this backend."""

import pytest

from roomchat.testing.backend_suite import BackendCase, BackendSuite


@pytest.fixture
def backend_case() -> BackendCase:
    return BackendCase("ring://")  # nothing survives a restart; it cannot become unreachable


class TestRingBackend(BackendSuite):
    pass
