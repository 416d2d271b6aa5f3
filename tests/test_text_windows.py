"""Tests for window start positions."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from focalseq.text.windows import window_starts


@pytest.mark.parametrize("n,window,stride,expected", [
    (0, 4, 2, [0]),
    (1, 4, 2, [0]),
    (4, 4, 2, [0]),
    (5, 4, 2, [0, 1]),
    (6, 4, 2, [0, 2]),
    (7, 4, 2, [0, 2, 3]),
    (10, 4, 4, [0, 4, 6]),
    (12, 4, 4, [0, 4, 8]),
    (10, 3, 1, list(range(8))),
    (100, 32, 16, [0, 16, 32, 48, 64, 68]),
])
def test_window_starts_by_hand(n, window, stride, expected):
    assert window_starts(n, window, stride) == expected


@given(st.integers(0, 500), st.integers(1, 64), st.data())
def test_windows_cover_every_line_in_order(n, window, data):
    stride = data.draw(st.integers(1, window))
    starts = window_starts(n, window, stride)
    assert starts[0] == 0 and starts == sorted(set(starts))
    if n > window:
        assert starts[-1] == n - window
        assert all(b - a <= stride for a, b in zip(starts, starts[1:]))
        covered = set()
        for s in starts:
            covered.update(range(s, s + window))
        assert covered == set(range(n))


@pytest.mark.parametrize("args,name", [
    ((10, 0, 1), "window"), ((10, 4, 0), "stride"), ((10, 4, 5), "stride"), ((-1, 4, 2), "n_lines"),
])
def test_invalid_sizes_name_the_parameter(args, name):
    with pytest.raises(ValueError, match=name):
        window_starts(*args)


def test_non_integer_sizes_are_rejected():
    with pytest.raises(TypeError, match="window"):
        window_starts(10, 2.0, 1)
    with pytest.raises(TypeError, match="stride"):
        window_starts(10, 4, True)
