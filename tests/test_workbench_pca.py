"""workbench/pca.py: the PCA of the maps and the patch colours, with a sign rule of the data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA

from workbench.pca import principal_components


def covariance_eigen(x: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: leading eigenvectors [count, D] and variance shares of the covariance."""
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(values)[::-1]
    return vectors[:, order[:count]].T, values[order[:count]] / values.sum()


def test_components_are_the_covariance_eigenvectors_with_the_largest_score_positive():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1]) + 7.0
    pcs = principal_components(x, 3)
    vectors, shares = covariance_eigen(x, 3)
    dots = np.abs(np.sum(pcs.components * vectors, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)  # the same directions, up to sign
    np.testing.assert_allclose(pcs.explained, shares, atol=1e-12)
    np.testing.assert_allclose(pcs.mean, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(pcs.scores, pcs.project(x), atol=1e-9)
    largest = pcs.scores[np.abs(pcs.scores).argmax(0), np.arange(3)]
    assert (largest > 0).all()


@pytest.mark.parametrize("shape", [(300, 40), (12, 64), (2, 5)])
def test_it_agrees_with_scikit_learn_up_to_sign(shape):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + 2.0
    ours = principal_components(x, 3)
    theirs = PCA(n_components=min(3, *shape), svd_solver="full").fit(x)
    signs = np.sign(np.sum(ours.components * theirs.components_, axis=1))
    np.testing.assert_allclose(ours.components, theirs.components_ * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(ours.scores, theirs.transform(x) * signs, atol=1e-8)
    np.testing.assert_allclose(ours.explained, theirs.explained_variance_ratio_, atol=1e-12)


def test_the_sign_rule_does_not_depend_on_the_row_order_or_a_flip_of_the_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8))
    order = rng.permutation(50)
    first, shuffled = principal_components(x, 2), principal_components(x[order], 2)
    np.testing.assert_allclose(first.components, shuffled.components, atol=1e-9)
    np.testing.assert_allclose(first.scores[order], shuffled.scores, atol=1e-9)


def test_the_count_is_capped_by_rows_and_columns():
    rng = np.random.default_rng(2)
    assert principal_components(rng.normal(size=(2, 10)), 3).scores.shape == (2, 2)
    assert principal_components(rng.normal(size=(10, 1)), 3).components.shape == (1, 1)


def test_constant_features_explain_nothing_and_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pcs = principal_components(np.full((5, 4), 3.0), 3)
    assert np.array_equal(pcs.explained, np.zeros(3))
    assert np.array_equal(pcs.scores, np.zeros((5, 3)))


@pytest.mark.parametrize("shape", [(1, 4), (4,), (2, 2, 2)])
def test_features_that_are_not_rows_are_refused_with_their_shape(shape):
    with pytest.raises(
        ValueError, match=rf"PCA needs features \[N >= 2, D\], got shape \({shape[0]}"
    ):
        principal_components(np.zeros(shape), 2)
