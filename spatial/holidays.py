"""China's public holidays (法定节假日): the days off, and the working weekend days.

The State Council announces each year's arrangement (国务院办公厅关于节假日安排的
通知); the days off of a festival run over a weekend and are paid back by working on
a nearby Saturday or Sunday (调休). Refuse, traffic and visits follow them: the
Spring Festival empties Beijing for a week, National Day changes who is where.
The synthetic city's loads and the refuse forecast read them here.

Announced arrangements: 2024, 2025 and 2026. 2027 is not announced yet: its
Spring Festival and National Day are given as the usual pattern around the
lunar new year (6 February 2027) and 1 October, marked ``expected``.

Examples
--------
>>> from datetime import date
>>> holiday(date(2026, 2, 17)), holiday(date(2026, 2, 24)), holiday(date(2026, 10, 3))
('spring_festival', None, 'national_day')
>>> is_day_off(date(2026, 3, 7)), is_day_off(date(2026, 2, 28))   # a Saturday; one worked
(True, False)
"""

from __future__ import annotations

from datetime import date, timedelta

#: (holiday, first day off, last day off, announced) per arrangement.
HOLIDAYS: tuple[tuple[str, date, date, bool], ...] = (
    ("new_year", date(2024, 1, 1), date(2024, 1, 1), True),
    ("spring_festival", date(2024, 2, 10), date(2024, 2, 17), True),
    ("qingming", date(2024, 4, 4), date(2024, 4, 6), True),
    ("labour_day", date(2024, 5, 1), date(2024, 5, 5), True),
    ("dragon_boat", date(2024, 6, 10), date(2024, 6, 10), True),
    ("mid_autumn", date(2024, 9, 15), date(2024, 9, 17), True),
    ("national_day", date(2024, 10, 1), date(2024, 10, 7), True),
    ("new_year", date(2025, 1, 1), date(2025, 1, 1), True),
    ("spring_festival", date(2025, 1, 28), date(2025, 2, 4), True),
    ("qingming", date(2025, 4, 4), date(2025, 4, 6), True),
    ("labour_day", date(2025, 5, 1), date(2025, 5, 5), True),
    ("dragon_boat", date(2025, 5, 31), date(2025, 6, 2), True),
    ("national_day", date(2025, 10, 1), date(2025, 10, 8), True),  # with mid-autumn
    ("new_year", date(2026, 1, 1), date(2026, 1, 3), True),
    ("spring_festival", date(2026, 2, 15), date(2026, 2, 23), True),
    ("qingming", date(2026, 4, 4), date(2026, 4, 6), True),
    ("labour_day", date(2026, 5, 1), date(2026, 5, 5), True),
    ("dragon_boat", date(2026, 6, 19), date(2026, 6, 21), True),
    ("mid_autumn", date(2026, 9, 25), date(2026, 9, 27), True),
    ("national_day", date(2026, 10, 1), date(2026, 10, 7), True),
    ("new_year", date(2027, 1, 1), date(2027, 1, 1), False),
    ("spring_festival", date(2027, 2, 5), date(2027, 2, 12), False),
    ("national_day", date(2027, 10, 1), date(2027, 10, 7), False),
)

#: Saturdays and Sundays worked to pay the days off back (调休上班).
WORKED_WEEKEND_DAYS: frozenset[date] = frozenset({
    date(2024, 2, 4), date(2024, 2, 18), date(2024, 4, 7), date(2024, 4, 28),
    date(2024, 5, 11), date(2024, 9, 14), date(2024, 9, 29), date(2024, 10, 12),
    date(2025, 1, 26), date(2025, 2, 8), date(2025, 4, 27), date(2025, 9, 28),
    date(2025, 10, 11),
    date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
    date(2026, 9, 20), date(2026, 10, 10),
})

#: The holidays' names.
NAMES = {"new_year": {"zh": "元旦", "en": "New Year"},
         "spring_festival": {"zh": "春节", "en": "Spring Festival"},
         "qingming": {"zh": "清明节", "en": "Qingming"},
         "labour_day": {"zh": "劳动节", "en": "Labour Day"},
         "dragon_boat": {"zh": "端午节", "en": "Dragon Boat Festival"},
         "mid_autumn": {"zh": "中秋节", "en": "Mid-Autumn Festival"},
         "national_day": {"zh": "国庆节", "en": "National Day"}}


def holiday(day: date) -> str | None:
    """The holiday ``day`` is a day off of, or None."""
    for name, first, last, _ in HOLIDAYS:
        if first <= day <= last:
            return name
    return None


def is_day_off(day: date) -> bool:
    """A day off: a holiday, or a weekend day that is not worked."""
    if holiday(day) is not None:
        return True
    return day.weekday() >= 5 and day not in WORKED_WEEKEND_DAYS


def days(first: date, last: date) -> list[tuple[date, str | None, bool]]:
    """Each day from ``first`` to ``last``: (day, holiday or None, day off)."""
    out = []
    d = first
    while d <= last:
        out.append((d, holiday(d), is_day_off(d)))
        d += timedelta(days=1)
    return out


def spans(name: str) -> list[tuple[date, date]]:
    """The (first, last) days off of one holiday, every year known."""
    return [(a, b) for n, a, b, _ in HOLIDAYS if n == name]


__all__ = ["HOLIDAYS", "NAMES", "WORKED_WEEKEND_DAYS", "days", "holiday", "is_day_off",
           "spans"]
