"""Where fixed-size windows over a document's lines start."""
import operator
from typing import List


def _as_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: must be an int, got {value!r}")
    try:
        return operator.index(value)  # accepts numpy integers too
    except TypeError:
        raise TypeError(f"{name}: must be an int, got {value!r}") from None


def window_starts(n_lines: int, window: int, stride: int) -> List[int]:
    """Start indices of windows covering every line of a document.

    Starts are ``0, stride, 2 * stride, ...`` while a full window fits; a final start
    ``n_lines - window`` is added when needed so that the last window ends on the last
    line. A document no longer than one window gets the single start 0.

    >>> window_starts(10, 4, 3)
    [0, 3, 6]
    >>> window_starts(11, 4, 3)
    [0, 3, 6, 7]
    >>> window_starts(3, 4, 2)
    [0]

    Args:
        n_lines: number of lines (>= 0).
        window: lines per window (>= 1).
        stride: lines between consecutive starts (1 <= stride <= window, so that no
            line is skipped).

    Raises:
        ValueError: a size outside the ranges above.
        TypeError: a size that is not an integer.
    """
    n_lines, window, stride = (_as_int(n, v) for n, v in (
        ("n_lines", n_lines), ("window", window), ("stride", stride)))
    if n_lines < 0:
        raise ValueError(f"n_lines: must be >= 0, got {n_lines}")
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride: must be in [1, window={window}], got {stride}")
    if n_lines <= window:
        return [0]
    last = n_lines - window
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts
