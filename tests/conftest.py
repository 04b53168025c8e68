"""Shared fixtures; GPU-marked tests skip cleanly without CUDA."""

from __future__ import annotations

import pytest
import torch

from swiglu_check.backends import REGISTRY, Backend


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def registered():
    """Register test backends in the global registry and remove them afterwards."""
    added: list[str] = []

    def add(backend: Backend) -> Backend:
        REGISTRY.register(backend, replace=True)
        added.append(backend.name)
        return backend

    yield add
    for name in added:
        REGISTRY.unregister(name)
