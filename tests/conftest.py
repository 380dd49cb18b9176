"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (steady timings on a 2-core machine; the numbers a test
    measures do not depend on the core count), restoring the previous setting afterwards.
    Use it file-wide with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
