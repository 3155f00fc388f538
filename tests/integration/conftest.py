from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path, db_url: str) -> Iterator[Workspace]:
    space = Workspace(tmp_path, db_url)
    yield space
    space.close()
