"""GBNF for JSON numbers within bounds: a schema's minimum, maximum, exclusiveMinimum and
exclusiveMaximum, enforced by the grammar rather than hoped for.

Integers are llama.cpp's `build_min_max_int` (common/json-schema-to-grammar.cpp), ported as it
is: digit by digit, no leading zeros, at most 16 digits. Numbers have no converter to borrow
from (llama.cpp leaves their bounds out), so they are built the same way: the integer part by
`integer_range`, and where it equals a bound's, a fraction compared digit by digit with the
bound's (`_fraction`). A bounded number is written without an exponent; every text the grammar
allows is a JSON number within the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DIGITS = 16  # of an integer part (llama.cpp's integral-part) and of a fraction


@dataclass(frozen=True)
class Bound:
    """One end of a range: the value and whether it is itself excluded."""

    value: Decimal
    strict: bool = False


def integer_range(low: int | None, high: int | None) -> str:
    """A GBNF expression for the integers from low to high (None: no bound), as llama.cpp writes it."""
    out: list[str] = []
    _min_max_int(low, high, out)
    return "".join(out)


def number_range(low: Bound | None, high: Bound | None) -> str:
    """A GBNF expression for the decimal numbers within the bounds; "" where none is."""
    parts = []
    if low is None or low.value < 0:  # negative numbers: "-" and their magnitude
        upper = None if low is None else Bound(-low.value, low.strict)
        lower = Bound(-high.value, high.strict) if high is not None and high.value <= 0 else None
        magnitude = _nonnegative(lower, upper)
        if magnitude:
            parts.append(f'"-" ({magnitude})')
    if high is None or high.value > 0 or (high.value == 0 and not high.strict):
        lower = low if low is not None and low.value >= 0 else None
        positive = _nonnegative(lower, high)
        if positive:
            parts.append(positive)
    return " | ".join(parts)


def _nonnegative(low: Bound | None, high: Bound | None) -> str:
    """Numbers >= 0 (with no sign) within the bounds: integer part, then a fraction."""
    a, f = _split(low.value) if low is not None else (0, "")
    low_strict = low is not None and low.strict
    branches: list[str] = []
    if high is None:
        branches.append(_with_fraction(a, _fraction(f, low_strict, None, False)))
        branches.append(f"({integer_range(a + 1, None)}) {_ANY_FRACTION}")
        return " | ".join(b for b in branches if b)
    c, g = _split(high.value)
    if a == c:
        return _with_fraction(a, _fraction(f, low_strict, g, high.strict))
    branches.append(_with_fraction(a, _fraction(f, low_strict, None, False)))
    if a + 1 <= c - 1:
        branches.append(f"({integer_range(a + 1, c - 1)}) {_ANY_FRACTION}")
    branches.append(_with_fraction(c, _fraction(None, False, g, high.strict)))
    return " | ".join(b for b in branches if b)


def _split(value: Decimal) -> tuple[int, str]:
    """A value >= 0 as (integer part, fraction digits without trailing zeros)."""
    text = format(value, "f")
    whole, _, frac = text.partition(".")
    return int(whole), frac.rstrip("0")


_ANY_FRACTION = f'("." [0-9]{{1,{DIGITS}}})?'


def _with_fraction(whole: int, fraction: tuple[bool, str]) -> str:
    """`whole` followed by a fraction: none where (True, ...), "." and the digits where given."""
    none_ok, digits = fraction
    if not digits:
        return f'"{whole}"' if none_ok else ""
    return f'"{whole}" ("." ({digits}))' + ("?" if none_ok else "")


def _fraction(
    low: str | None, low_strict: bool, high: str | None, high_strict: bool, room: int = DIGITS
) -> tuple[bool, str]:
    """Fraction digits D (0.D) within bounds given as digits (None: no bound): (D may be empty, GBNF
    for D of 1..room digits, "" where none). Digit by digit, as integers are built."""
    if low == "" and not low_strict:
        low = None  # >= 0: always
    empty_ok = low is None and (high is None or high != "" or not high_strict)
    if room == 0:
        return empty_ok, ""
    if low is None and high == "":  # only zeros, if any digits
        return empty_ok, "" if high_strict else f"[0]{{1,{room}}}"
    if low == "" and high is None:  # > 0: some digit not a zero
        return False, f"[0]{{0,{room - 1}}} [1-9] [0-9]{{0,{room - 1}}}"
    lo, low_rest = (int(low[0]), low[1:]) if low else (0, "")  # "" is 0.000...
    hi, high_rest = (int(high[0]), high[1:]) if high else (0, "")
    free_from = lo + 1 if low is not None else 0
    free_to = hi - 1 if high is not None else 9
    alternatives: list[str] = []
    if free_from <= free_to:
        alternatives.append(f"{_digits(free_from, free_to)} [0-9]{{0,{room - 1}}}")
    for digit in sorted({lo, hi}):
        on_low = low is not None and digit == lo
        on_high = high is not None and digit == hi
        if not (on_low or on_high):
            continue
        tail_ok, tail = _fraction(
            low_rest if on_low else None,
            low_strict and on_low,
            high_rest if on_high else None,
            high_strict and on_high,
            room - 1,
        )
        if tail:
            alternatives.append(f'"{digit}" ({tail})' + ("?" if tail_ok else ""))
        elif tail_ok:
            alternatives.append(f'"{digit}"')
    return empty_ok, " | ".join(alternatives)


def _digits(low: int, high: int) -> str:
    return f"[{low}]" if low == high else f"[{low}-{high}]"


# --- integers: llama.cpp's build_min_max_int -------------------------------------------------------


def _min_max_int(min_value: int | None, max_value: int | None, out: list[str]) -> None:
    """llama.cpp's build_min_max_int (common/json-schema-to-grammar.cpp) where both bounds are
    given; one bound is written as "as many digits and at least the bound" or "more digits", as
    llama.cpp's own one-bound branch would let 15 through for a minimum of 105."""
    if min_value is not None and max_value is not None:
        if min_value < 0 and max_value < 0:
            out.append('"-" (')
            _min_max_int(-max_value, -min_value, out)
            out.append(")")
            return
        if min_value < 0:
            out.append('"-" (')
            _min_max_int(0, -min_value, out)
            out.append(") | ")
            min_value = 0
        low_s, high_s = str(min_value), str(max_value)
        for digits in range(len(low_s), len(high_s)):
            _uniform_range(low_s, "9" * digits, out)
            low_s = "1" + "0" * digits
            out.append(" | ")
        _uniform_range(low_s, high_s, out)
        return
    if min_value is not None:
        if min_value < 0:  # the negatives down to the minimum, and every number >= 0
            out.append('"-" (')
            _min_max_int(0, -min_value, out)
            out.append(f") | [0] | [1-9] [0-9]{{0,{DIGITS - 1}}}")
            return
        low_s = str(min_value)
        _uniform_range(low_s, "9" * len(low_s), out)
        if len(low_s) < DIGITS:
            out.append(f" | [1-9] [0-9]{{{len(low_s)},{DIGITS - 1}}}")
        return
    if max_value is not None:
        if max_value < 0:
            out.append('"-" (')
            _min_max_int(-max_value, None, out)
            out.append(")")
            return
        out.append(f'"-" [1-9] [0-9]{{0,{DIGITS - 1}}} | ')
        _min_max_int(0, max_value, out)
        return
    raise ValueError("at least one of min_value or max_value must be set")


def _uniform_range(low: str, high: str, out: list[str]) -> None:
    """Numbers of len(low) == len(high) digits from low to high (llama.cpp's uniform_range)."""
    i = 0
    while i < len(low) and i < len(high) and low[i] == high[i]:
        i += 1
    if i > 0:
        out.append(f'"{low[:i]}"')
    if i < len(low) and i < len(high):
        if i > 0:
            out.append(" ")
        sub_len = len(low) - i - 1
        if sub_len > 0:
            low_sub, high_sub = low[i + 1 :], high[i + 1 :]
            zeros, nines = "0" * sub_len, "9" * sub_len
            high_reached = False
            out.append("(")
            if low_sub == zeros:
                out.append(f"{_digits(int(low[i]), int(high[i]) - 1)} {_more_digits(sub_len)}")
            else:
                out.append(f"[{low[i]}] (")
                _uniform_range(low_sub, nines, out)
                out.append(")")
                if int(low[i]) < int(high[i]) - 1:
                    out.append(" | ")
                    if high_sub == nines:
                        out.append(_digits(int(low[i]) + 1, int(high[i])))
                        high_reached = True
                    else:
                        out.append(_digits(int(low[i]) + 1, int(high[i]) - 1))
                    out.append(f" {_more_digits(sub_len)}")
            if not high_reached:
                out.append(f" | {_digits(int(high[i]), int(high[i]))} ")
                _uniform_range(zeros, high_sub, out)
            out.append(")")
        else:
            out.append(f"[{low[i]}-{high[i]}]")


def _more_digits(n: int) -> str:
    return "[0-9]" if n == 1 else f"[0-9]{{{n}}}"
