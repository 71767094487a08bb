from __future__ import annotations

from typing import Any

import pytest
from tests.deploy.helpers import synth_documents


@pytest.fixture
def dev_documents() -> list[dict[str, Any]]:
    return synth_documents("dev")


@pytest.fixture
def prod_documents() -> list[dict[str, Any]]:
    return synth_documents("prod")
