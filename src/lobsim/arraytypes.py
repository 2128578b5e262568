"""Array type aliases used across lobsim."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Float64Array = NDArray[np.float64]
Float64Array1D = np.ndarray[tuple[int], np.dtype[np.float64]]
Float64Array2D = np.ndarray[tuple[int, int], np.dtype[np.float64]]
Int64Array = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
AnyArray = NDArray[Any]
