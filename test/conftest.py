"""Shared test helpers: the project's shared data lives at ../shared, beside the repository root.

    def test_parity(shared_path):
        expected = shared_path("fixtures", "samdaq_parity", "expected.npz")
"""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def find_shared(*parts: str) -> Path:
    """Path of ../shared/<parts...>; skips the calling test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        shown = "/".join(("..", "shared") + parts)
        pytest.skip(
            f"{shown} not found: tests that need the project's shared data run only where it is "
            "present (CI has it)"
        )
    return path


@pytest.fixture
def repo_root() -> Path:
    """The repository root (where setup.py and package.xml are)."""
    return REPO_ROOT


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder; skips the test when it is absent."""
    return find_shared()


@pytest.fixture
def shared_path():
    """The function find_shared(*parts): a path under ../shared, or a skip when it is absent."""
    return find_shared
