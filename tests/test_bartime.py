"""``feeds.bartime``'s scalar ISO text agrees with its vectorised conversion."""

import numpy as np
import pandas as pd

from feeds.bartime import epoch_to_iso, index_to_num, num_to_index, num_to_iso


def test_num_to_iso_is_one_value_of_num_to_index():
    idx = pd.DatetimeIndex(["2021-07-01 00:00", "2021-07-29 13:00", "2024-02-29 23:59:59.123",
                            "1999-12-31 23:00"], tz="UTC")
    nums = index_to_num(idx)
    assert [num_to_iso(n) for n in nums] == [t.isoformat() for t in num_to_index(nums)]
    assert num_to_iso(nums[0]) == "2021-07-01T00:00:00+00:00"
    assert epoch_to_iso(0.0) == "1970-01-01T00:00:00+00:00"
    assert epoch_to_iso(1.2346) == "1970-01-01T00:00:01.235000+00:00"  # snapped to the ms
    jitter = nums[1] + np.float64(3e-9)  # backtrader's float dates carry microsecond noise
    assert num_to_iso(jitter) == "2021-07-29T13:00:00+00:00"
