"""Deterministic Chinese names for the synthetic city: roads, admin units,
compounds, parks, people.

Every function draws from a :class:`numpy.random.Generator` the caller owns,
so the same stream gives the same names. Place-name stems are real
Chaoyang/Beijing toponyms, recombined: the city is plausible, not a copy.
"""

from __future__ import annotations

import numpy as np

#: Stems of place names (地名用字) around Chaoyang.
STEMS: tuple[str, ...] = (
    "光华", "建国", "朝阳", "团结", "农展", "亮马", "枣营", "霞光", "东风", "将台",
    "酒仙", "望京", "安贞", "和平", "惠新", "北辰", "小关", "芍药", "太阳", "双井",
    "劲松", "潘家", "垡头", "高碑", "八里", "三里", "呼家", "金台", "白家", "延静",
    "秀水", "日坛", "神路", "光熙", "幸福", "新源", "左家", "香河", "西坝", "樱花",
    "育慧", "北苑", "南湖", "花家", "甜水", "百子", "红庙", "慈云", "水碓", "关东",
    "东大", "西大", "永安", "广渠", "松榆", "华威", "弘善", "武圣", "十里", "南磨",
    "化工", "王四", "小武", "大郊", "朝来", "富力", "青年", "常营", "管庄", "定福",
    "姚家", "石佛", "黄杉", "东坝", "驼房", "东苇", "平房", "草房", "康家", "孙河",
    "蟹岛", "崔各", "金盏", "马泉", "楼梓", "豆各", "黑庄", "焦化", "翠城", "成寿",
    "大羊", "小红", "肖村", "龙爪", "吉祥", "长春", "安华", "兴隆", "福长", "静安",
)

#: Real street offices of Chaoyang district (朝阳区), used as names of ours.
STREET_OFFICE_NAMES: tuple[str, ...] = (
    "建外", "朝外", "呼家楼", "三里屯", "左家庄", "香河园", "和平街", "安贞", "亚运村",
    "小关", "酒仙桥", "麦子店", "团结湖", "六里屯", "八里庄", "双井", "劲松", "潘家园",
    "垡头", "首都机场", "南磨房", "高碑店", "将台", "太阳宫", "大屯", "望京", "奥运村",
    "东湖", "来广营", "孙河", "崔各庄", "东坝", "常营", "管庄", "平房", "三间房",
    "豆各庄", "黑庄户", "金盏", "十八里店", "王四营", "小红门", "东风", "楼梓庄",
)

_DIRECTIONS = ("东", "西", "南", "北")
_NUMERALS = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十")
_COMPOUND_SUFFIXES = ("小区", "家园", "花园", "苑", "公寓", "里", "新村", "嘉园", "北里",
                      "南里", "西里", "东里", "名苑", "华庭", "雅园")
_HUTONG_SUFFIXES = ("胡同", "胡同", "胡同", "巷", "条")
PROPERTY_MANAGERS: tuple[str, ...] = (
    "首开物业", "万科物业", "保利物业", "金隅物业", "中海物业", "绿城服务", "长城物业",
    "鸿坤物业", "朝阳区房管局", "北辰物业", "天鸿宝地物业", "华远物业",
)

_SURNAMES = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
                          "曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖"
                          "贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严"))
# Zipf-like weights: 王/李/张 together carry about a fifth of the population.
_SURNAME_P = 1.0 / np.arange(1, _SURNAMES.size + 1) ** 0.9
_SURNAME_P /= _SURNAME_P.sum()
_GIVEN_MALE = np.array(list("伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳"
                            "建国志永海峰东亮成文博庆振宏晨昊天子轩睿泽"))
_GIVEN_FEMALE = np.array(list("芳娜敏静丽艳娟霞秀英华慧巧美婷雪琳晶颖玉兰红萍燕玲桂佳琪欣怡"
                              "梦瑶思雨涵诗悦彤妍可馨琳淑珍凤洁倩月"))


class NameBook:
    """Hands out unique names from a seeded generator.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; same state, same names.

    Examples
    --------
    >>> book = NameBook(np.random.default_rng(1))
    >>> a, b = book.road("arterial"), book.road("arterial")
    >>> a != b and a.endswith(("路", "大街"))
    True
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def _stem(self) -> str:
        return str(STEMS[int(self.rng.integers(len(STEMS)))])

    def _unique(self, make: object) -> str:
        assert callable(make)
        for _ in range(200):
            name = str(make())
            if name not in self.used:
                self.used.add(name)
                return name
        # The stems are exhausted for this pattern: number the last candidate.
        k = 2
        while f"{name}{k}" in self.used:
            k += 1
        self.used.add(f"{name}{k}")
        return f"{name}{k}"

    def road(self, road_class: str) -> str:
        """A road name for a road class (…快速路, …大街, …路, …街, …胡同)."""
        rng = self.rng

        def make() -> str:
            stem = self._stem()
            direction = str(rng.choice(_DIRECTIONS)) if rng.random() < 0.35 else ""
            if road_class == "expressway":
                if rng.random() < 0.3:
                    return f"东{_number(int(rng.integers(2, 7)))}环路"
                return f"{stem}{rng.choice(('快速路', '高速路', '快速路'))}"
            if road_class == "arterial":
                return f"{stem}{direction}{rng.choice(('路', '大街', '大街', '路'))}"
            if road_class == "secondary":
                return f"{stem}{direction}{rng.choice(('路', '街', '路'))}"
            if road_class == "branch":
                if rng.random() < 0.3:
                    side = direction or rng.choice(_DIRECTIONS)
                    return f"{stem}{side}{rng.choice(_NUMERALS[:5])}路"
                return f"{stem}{direction}{rng.choice(('路', '街', '巷'))}"
            return f"{direction}{stem}{rng.choice(_HUTONG_SUFFIXES[:4])}"

        return self._unique(make)

    def lanes(self, n: int) -> list[str]:
        """Names of ``n`` parallel numbered lanes (…头条, …二条, …三条)."""
        stem = self._stem() + (str(self.rng.choice(_DIRECTIONS)) if self.rng.random() < 0.5
                               else "")
        while f"{stem}头条" in self.used:
            stem = self._stem() + str(self.rng.choice(_DIRECTIONS))
        names = [f"{stem}头条" if i == 0 else f"{stem}{_number(i + 1)}条" for i in range(n)]
        self.used.update(names)
        return names

    def compound(self) -> str:
        """A compound (小区) name: 和平里小区, 幸福家园, 光华花园…"""
        return self._unique(lambda: f"{self._stem()}{self.rng.choice(_COMPOUND_SUFFIXES)}")

    def community(self) -> str:
        """A community (社区) name."""
        rng = self.rng
        return self._unique(lambda: f"{self._stem()}"
                            f"{rng.choice(('', '里', '北', '南', '东', '西', '园', '路'))}社区")

    def park(self) -> str:
        """A park (公园) name."""
        return self._unique(lambda: f"{self._stem()}{self.rng.choice(('公园', '绿地', '游园'))}")

    def river(self) -> str:
        """A river or canal name."""
        return self._unique(lambda: f"{self._stem()}{self.rng.choice(('河', '渠', '沟'))}")


def _number(k: int) -> str:
    """Chinese numeral for 1..99.

    Examples
    --------
    >>> _number(3), _number(10), _number(12), _number(20)
    ('三', '十', '十二', '二十')
    """
    if k <= 10:
        return _NUMERALS[k - 1]
    tens, ones = divmod(k, 10)
    return f"{'' if tens == 1 else _NUMERALS[tens - 1]}十{_NUMERALS[ones - 1] if ones else ''}"


def person_names(rng: np.random.Generator, surnames: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Given names appended to surnames: one or two characters by gender.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    surnames : numpy.ndarray of str
        One surname per person.
    male : numpy.ndarray of bool
        Gender per person.

    Returns
    -------
    numpy.ndarray of str
        Full names such as 王建国 or 李娜.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> names = person_names(rng, np.array(["王", "李"]), np.array([True, False]))
    >>> [len(n) in (2, 3) for n in names]
    [True, True]
    """
    n = surnames.size
    first = np.where(male, _GIVEN_MALE[rng.integers(_GIVEN_MALE.size, size=n)],
                     _GIVEN_FEMALE[rng.integers(_GIVEN_FEMALE.size, size=n)])
    second = np.where(male, _GIVEN_MALE[rng.integers(_GIVEN_MALE.size, size=n)],
                      _GIVEN_FEMALE[rng.integers(_GIVEN_FEMALE.size, size=n)])
    two = rng.random(n) < 0.7
    return np.char.add(np.char.add(surnames, first), np.where(two, second, ""))


def surnames(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` surnames drawn with a realistic (Zipf-like) frequency."""
    return _SURNAMES[rng.choice(_SURNAMES.size, size=n, p=_SURNAME_P)]
