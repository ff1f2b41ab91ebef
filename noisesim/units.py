"""Time units of the command line and the device profiles: '1h' → 3600.0 s and back (torch-free)."""

from __future__ import annotations

import math
import re
from typing import Any

UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0,
         "y": 365.0 * 86400.0}
TIME_HELP = "a number of seconds or NUMBER+UNIT with unit s, min, h, d, w, y (e.g. 20s, 1h, 30d, 1y)"


def parse_time(value: Any) -> float:
    """'1h' → 3600.0; plain numbers are seconds. Raises ValueError naming the allowed forms."""
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is not {TIME_HELP}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(f"time {value!r} must be finite and >= 0 ({TIME_HELP})") from None
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", str(value).lower())
        if not match or match.group(2) not in {"", *UNITS}:
            raise ValueError(f"time {value!r} is not {TIME_HELP}")
        seconds = float(match.group(1)) * UNITS.get(match.group(2), 1.0)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"time {value!r} must be finite and >= 0 ({TIME_HELP})")
    return seconds


def format_time(seconds: float) -> str:
    """3600.0 → '1h'; the largest unit that divides evenly (a sweep's time labels)."""
    for unit in ("y", "d", "h", "min", "s"):
        count = seconds / UNITS[unit]
        if seconds >= UNITS[unit] and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_decimal(text: str) -> float:
    """A plain ASCII decimal number ('0.01', '1e-3', '.5'); ValueError for anything else Python's float() would
    also take ('1_0', full-width digits, 'nan', 'inf', '0x10')."""
    if not isinstance(text, str) or not DECIMAL.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a plain decimal number")
    return float(text)
