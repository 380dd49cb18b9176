import pytest
import torch

from lablib.testing import assert_agree, max_scaled_error


def test_scaled_error_is_relative_to_the_largest_entry():
    expected = torch.tensor([100.0, 0.001])
    assert max_scaled_error(expected + torch.tensor([0.0, 0.0005]), expected) == pytest.approx(5e-6)
    # Below a scale of 1 the error is absolute.
    assert max_scaled_error(torch.tensor([0.2]), torch.tensor([0.1])) == pytest.approx(0.1)


def test_assert_agree_rejects_disagreement_and_nan():
    with pytest.raises(AssertionError, match="scaled max error"):
        assert_agree(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]), 1e-5)
    with pytest.raises(AssertionError):
        assert_agree(torch.tensor([float("nan")]), torch.tensor([1.0]), 1e-5)
    with pytest.raises(ValueError, match=r"shapes differ.*\(2,\).*\(3,\)"):
        max_scaled_error(torch.zeros(2), torch.zeros(3))


def test_complex_tensors_compare_their_imaginary_parts():
    import torch

    from lablib.testing import max_scaled_error

    a = torch.tensor([1 + 1j, 2 + 0j], dtype=torch.complex64)
    b = torch.tensor([1 + 0j, 2 + 0j], dtype=torch.complex64)
    assert max_scaled_error(a, b) == pytest.approx(0.5)  # |i| / max(1, 2)
    assert max_scaled_error(a, a) == 0.0
