"""pytest plugin (auto-loaded with tokcore): fixtures for testing tokcore components."""

from __future__ import annotations

from typing import Iterator

import pytest

from tokcore import registry


@pytest.fixture
def tokcore_registry() -> Iterator[registry.Registry]:
    """A temporary copy of the registry; components registered on it vanish after the test."""
    with registry.scope() as reg:
        yield reg
