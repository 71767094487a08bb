from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.wire import ReplayUpstream


@pytest.fixture
def replay() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as upstream:
        yield upstream
