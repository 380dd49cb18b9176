"""The track 2 exercise checks accept correct solutions and reject plausible wrong ones."""

import numpy as np
import pytest

from lablib.exercises.koopman import check_dmd_eigenvalues, check_finite_koopman_matrix


def good_dmd(X, Y, r):
    U, s, Vh = np.linalg.svd(X, full_matrices=False)
    U, s, V = U[:, :r], s[:r], Vh[:r].conj().T
    return np.linalg.eigvals(U.conj().T @ Y @ V / s)


def dmd_without_truncation(X, Y, r):  # the full least-squares map: n eigenvalues, not r
    return np.linalg.eigvals(Y @ np.linalg.pinv(X))


def dmd_with_x_instead_of_y(X, Y, r):  # projects X onto its own basis: all eigenvalues 1
    U, s, Vh = np.linalg.svd(X, full_matrices=False)
    U, s, V = U[:, :r], s[:r], Vh[:r].conj().T
    return np.linalg.eigvals(U.conj().T @ X @ V / s)


def good_K(a, b, c):
    return np.array([[a, 0, 0], [0, b, c], [0, 0, a**2]])


def K_with_a_not_squared(a, b, c):
    return np.array([[a, 0, 0], [0, b, c], [0, 0, a]])


def test_checks_accept_correct_solutions():
    assert check_dmd_eigenvalues(good_dmd).startswith("✓")
    assert check_finite_koopman_matrix(good_K).startswith("✓")


@pytest.mark.parametrize("check,wrong", [
    (check_dmd_eigenvalues, dmd_without_truncation),
    (check_dmd_eigenvalues, dmd_with_x_instead_of_y),
    (check_finite_koopman_matrix, K_with_a_not_squared),
])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)


def test_latent_rollout_check():
    import torch

    from lablib.exercises.koopman import check_latent_rollout

    def good(K, z0, steps):
        zs = [z0]
        for _ in range(steps):
            zs.append(zs[-1] @ K.T)  # rows: (K z)^T = z^T K^T
        return torch.stack(zs, 1)

    def transposed(K, z0, steps):  # applies K^T instead of K
        zs = [z0]
        for _ in range(steps):
            zs.append(zs[-1] @ K)
        return torch.stack(zs, 1)

    assert check_latent_rollout(good).startswith("✓")
    with pytest.raises(AssertionError, match="latent rollout"):
        check_latent_rollout(transposed)


def test_affine_combine_check():
    from lablib.exercises.koopman import check_affine_combine

    assert check_affine_combine(lambda a1, b1, a2, b2: (a2 * a1, a2 * b1 + b2)).startswith("✓")
    with pytest.raises(AssertionError, match="affine combine"):  # the steps composed in the wrong order
        check_affine_combine(lambda a1, b1, a2, b2: (a1 * a2, a1 * b2 + b1))
