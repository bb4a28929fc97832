"""Households and residents of the synthetic city, made in vectorised chunks.

Household sizes follow Beijing (1–5 people, mean ≈ 2.5); members come from
family templates (elderly couple, couple with a child, three generations…)
so ages inside a household are consistent; the age structure is roughly
Beijing's registered population (≈ 13 % under 15, ≈ 20 % aged 65 and over).
Every resident is marked ``synthetic``. Identity numbers (居民身份证号) follow
GB 11643-1999: region code, birth date, sequence code (odd for men), and an
ISO 7064 MOD 11-2 check digit; no two residents share one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from democity.context import REFERENCE_TIME
from democity.names import person_names, surnames

#: Check-digit weights of GB 11643-1999 (2^(17-i) mod 11).
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = "10X98765432"
#: Region code of residents registered here, and of some places migrants come from.
LOCAL_REGION = 110105
MIGRANT_REGIONS = np.array([130102, 130602, 131002, 140105, 150102, 210102, 220102, 230102,
                            320102, 340102, 360102, 370102, 371002, 410102, 410305, 411302,
                            420102, 430102, 500101, 510104, 610102, 620102, 120101])
_MOBILE_PREFIXES = np.array([130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152,
                             153, 155, 156, 157, 158, 159, 180, 181, 182, 183, 184, 185, 186,
                             187, 188, 189, 191, 193, 195, 196, 198, 199])
REFERENCE_DATE = np.datetime64(REFERENCE_TIME.date(), "D")
#: Oldest birth date an identity number may carry (ages up to ~110).
_EPOCH = REFERENCE_DATE - np.timedelta64(41_000, "D")
#: Share of occupied households by size 1..5.
SIZE_P = np.array([0.22, 0.31, 0.25, 0.14, 0.08])

# Family templates: (size, probability within size, head age range, roles).
# Roles: S spouse, C child, P parent of the head.
_TEMPLATES: tuple[tuple[int, float, tuple[int, int], str], ...] = (
    (1, 0.38, (65, 95), ""), (1, 0.62, (20, 64), ""),
    (2, 0.40, (60, 90), "S"), (2, 0.30, (23, 45), "S"), (2, 0.10, (28, 50), "C"),
    (2, 0.20, (24, 50), "P"),
    (3, 0.62, (27, 48), "SC"), (3, 0.23, (45, 62), "SC"), (3, 0.15, (24, 40), "PP"),
    (4, 0.50, (30, 48), "SCC"), (4, 0.30, (28, 45), "SCP"), (4, 0.20, (30, 46), "SPP"),
    (5, 0.75, (30, 46), "SCPP"), (5, 0.25, (32, 48), "SCCP"),
)


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits.

    Examples
    --------
    >>> check_digit("11010519491231002")
    'X'
    """
    total = sum(int(ch) * int(w) for ch, w in zip(first17, ID_WEIGHTS, strict=True))
    return _CHECK[total % 11]


def valid_id_number(value: str) -> bool:
    """Whether ``value`` is a well-formed 18-character identity number.

    Checks the length, digits, a real birth date and the check character.

    Examples
    --------
    >>> valid_id_number("11010519491231002X")
    True
    >>> valid_id_number("110105194912310021")
    False
    >>> valid_id_number("110105194902300021")
    False
    """
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        np.datetime64(f"{value[6:10]}-{value[10:12]}-{value[12:14]}", "D")
    except ValueError:
        return False
    return check_digit(value[:17]) == value[17].upper()


@dataclass
class People:
    """Residents of a chunk of households, as parallel arrays."""

    household: np.ndarray  # position of the household in the chunk
    name: np.ndarray
    id_number: list[str]
    phone: list[str | None]
    birth_date: np.ndarray  # datetime64[D]
    male: np.ndarray
    age: np.ndarray
    tags: list[str]  # PostgreSQL array literals
    flags: dict[str, np.ndarray]


class PeopleMaker:
    """Makes residents chunk by chunk, keeping identity numbers unique across chunks.

    Parameters
    ----------
    rng : numpy.random.Generator
        The stream all chunks draw from, in order.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.regions = np.concatenate([[LOCAL_REGION], MIGRANT_REGIONS])
        days = int((REFERENCE_DATE - _EPOCH).astype(int)) + 1
        self.counter = np.zeros((self.regions.size, days, 2), dtype=np.int16)
        # Sequence numbers look random but are handed out without repeats.
        self.seq_perm = rng.permutation(500)

    def sizes(self, n: int) -> np.ndarray:
        """Household sizes for ``n`` occupied households."""
        return self.rng.choice(np.arange(1, 6), size=n, p=SIZE_P)

    def make(self, sizes: np.ndarray, floating: np.ndarray, low_income: np.ndarray) -> People:
        """Residents of households of the given sizes.

        Parameters
        ----------
        sizes : numpy.ndarray
            People per household (1..5).
        floating : numpy.ndarray of bool
            Households of migrants (流动人口): registered elsewhere.
        low_income : numpy.ndarray of bool
            Households on minimum living allowance (低保).

        Returns
        -------
        People
            Members in household order.
        """
        rng = self.rng
        n_hh = sizes.size
        template = np.zeros(n_hh, dtype=np.int64)
        for size in range(1, 6):
            idx = np.flatnonzero(sizes == size)
            cands = [k for k, t in enumerate(_TEMPLATES) if t[0] == size]
            p = np.array([_TEMPLATES[k][1] for k in cands])
            template[idx] = rng.choice(cands, size=idx.size, p=p / p.sum())
        lo = np.array([t[2][0] for t in _TEMPLATES])[template]
        hi = np.array([t[2][1] for t in _TEMPLATES])[template]
        head_age = rng.integers(lo, hi + 1)
        head_male = rng.random(n_hh) < 0.55
        family = surnames(rng, n_hh)
        other = surnames(rng, n_hh)
        members_hh, ages, male, roles = [np.arange(n_hh)], [head_age], [head_male], \
            [np.zeros(n_hh, dtype=np.int8)]
        max_roles = max(len(t[3]) for t in _TEMPLATES)
        n_parent = np.zeros(n_hh, dtype=np.int64)
        first_parent_male = np.zeros(n_hh, dtype=bool)
        for k in range(max_roles):
            role = np.array([t[3][k] if k < len(t[3]) else "" for t in _TEMPLATES])[template]
            for code, rid in (("S", 1), ("C", 2), ("P", 3)):
                idx = np.flatnonzero(role == code)
                if not idx.size:
                    continue
                h = head_age[idx]
                if code == "S":
                    a = h + np.rint(rng.normal(-1.5, 3, idx.size)).astype(np.int64)
                    m = ~head_male[idx]
                elif code == "C":
                    a = h - rng.integers(23, 37, idx.size)
                    m = rng.random(idx.size) < 0.51
                else:
                    a = h + rng.integers(24, 34, idx.size)
                    first = n_parent[idx] == 0
                    m = np.where(first, rng.random(idx.size) < 0.45, ~first_parent_male[idx])
                    first_parent_male[idx[first]] = m[first]
                    n_parent[idx] += 1
                members_hh.append(idx)
                ages.append(np.clip(a, 0, 104))
                male.append(m)
                roles.append(np.full(idx.size, rid, dtype=np.int8))
        hh = np.concatenate(members_hh)
        order = np.argsort(hh, kind="stable")
        hh = hh[order]
        age = np.concatenate(ages)[order]
        is_male = np.concatenate(male)[order]
        role = np.concatenate(roles)[order]
        n = hh.size

        # The family name passes through the men of the core couple to the children.
        sur = np.where((role == 2) | ((role <= 1) & is_male) | ((role == 3) & is_male),
                       family[hh], other[hh])
        sur = np.where(role == 3, np.where(is_male, family[hh], surnames(rng, n)), sur)
        name = person_names(rng, sur, is_male)

        days = np.rint(age * 365.25 + rng.uniform(0, 365, n)).astype(np.int64)
        birth = REFERENCE_DATE - days.astype("timedelta64[D]")
        region_idx = np.where(floating[hh], rng.integers(1, self.regions.size, n), 0)
        id_numbers = self._id_numbers(region_idx, birth, is_male)

        phone_ok = age >= 12
        prefixes = _MOBILE_PREFIXES[rng.integers(_MOBILE_PREFIXES.size, size=n)]
        rest = rng.integers(0, 100_000_000, n)
        phone = [f"{p}{r:08d}" if ok else None
                 for p, r, ok in zip(prefixes.tolist(), rest.tolist(), phone_ok.tolist(),
                                     strict=True)]

        size_of = sizes[hh]
        adults = age >= 18
        flags = {
            "elderly_alone": (size_of == 1) & (age >= 65),
            "empty_nest": (size_of == 2) & (age >= 60) & (role <= 1)
            & (np.bincount(hh, weights=(age < 60), minlength=n_hh)[hh] == 0),
            "disabled": rng.random(n) < np.select([age < 40, age < 65], [0.022, 0.045], 0.1),
            "low_income": low_income[hh],
            "key_person": adults & (age < 70) & (rng.random(n) < 0.004),
            "veteran": is_male & (age >= 35) & (rng.random(n) < 0.04),
            "party_member": adults & (rng.random(n) < 0.12),
            "volunteer": adults & (age < 76) & (rng.random(n) < 0.06),
            "floating_population": floating[hh],
        }
        flags["extreme_poverty"] = flags["elderly_alone"] & low_income[hh] \
            & (rng.random(n) < 0.3)
        tag_text = np.full(n, "", dtype=object)
        for tag, mask in flags.items():
            tag_text = np.where(mask, tag_text + "," + tag, tag_text)
        tags = ["{" + t[1:] + "}" for t in tag_text.tolist()]
        return People(hh, name, id_numbers, phone, birth, is_male, age, tags, flags)

    def _id_numbers(self, region_idx: np.ndarray, birth: np.ndarray,
                    male: np.ndarray) -> list[str]:
        """Unique identity numbers: sequence codes counted per region, date and sex."""
        day = (birth - _EPOCH).astype(np.int64)
        sex = male.astype(np.int64)
        key = (region_idx * self.counter.shape[1] + day) * 2 + sex
        order = np.argsort(key, kind="stable")
        ks = key[order]
        start = np.r_[True, ks[1:] != ks[:-1]]
        first = np.maximum.accumulate(np.where(start, np.arange(ks.size), 0))
        rank = np.empty_like(key)
        rank[order] = np.arange(ks.size) - first
        flat = self.counter.reshape(-1)
        k = (flat[key].astype(np.int64) + rank) % 500
        np.add.at(flat, key, 1)
        seq = 2 * self.seq_perm[k] + sex  # odd for men, even for women
        ymd = birth.astype("datetime64[D]").astype(str)
        ymd_int = np.char.replace(ymd, "-", "").astype(np.int64)
        region = self.regions[region_idx]
        digits = np.concatenate([
            (region[:, None] // 10 ** np.arange(5, -1, -1)) % 10,
            (ymd_int[:, None] // 10 ** np.arange(7, -1, -1)) % 10,
            (seq[:, None] // 10 ** np.arange(2, -1, -1)) % 10,
        ], axis=1)
        check = np.array(list(_CHECK))[(digits * ID_WEIGHTS).sum(axis=1) % 11]
        return [f"{r:06d}{d:08d}{s:03d}{c}" for r, d, s, c in
                zip(region.tolist(), ymd_int.tolist(), seq.tolist(), check.tolist(),
                    strict=True)]

