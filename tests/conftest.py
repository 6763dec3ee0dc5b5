"""Fixtures shared by every folder of the suite: scikit-learn's digits, whole and held out.

Module-scoped, as each test file had them before: a test that altered the arrays could not reach
another file. Helpers called with arguments (central differences, a snippet in a fresh Python, the
one-and-two-threads fit) are in _helpers.py, which says why.
"""
import pytest
from sklearn.model_selection import train_test_split

from _helpers import digits


@pytest.fixture(scope="module")
def all_digits():
    """All 1797 digits, scaled to [0, 1]: (X, y)."""
    return digits()


@pytest.fixture(scope="module")
def digits_split():
    """The digits scaled to [0, 1], a stratified quarter held out:
    (X_train, X_test, y_train, y_test)."""
    X, y = digits()
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
