"""Well-formed input: text without NUL or lone surrogates, strict JSON of bounded depth.

What every request may carry, whatever the route, stated once:

* **No U+0000 and no lone surrogate in text.** PostgreSQL cannot store a NUL
  in ``text`` or ``jsonb``, and a surrogate code point (U+D800–U+DFFF, which
  JSON's ``"\\ud800"`` escape produces) cannot be encoded as UTF-8 at all:
  either one reaching the database or a response is a 500.
* **JSON is RFC 8259 JSON.** Python's :mod:`json` accepts ``NaN``,
  ``Infinity`` and ``-Infinity`` (and reads ``1e400`` as infinity); jsonb and
  every other client refuse them.
* **JSON nests at most** :data:`MAX_JSON_DEPTH` **levels.** Python's decoder
  (and everything that walks the decoded value) recurses once per level: a
  body a few thousand levels deep raises ``RecursionError``. The depth is
  counted before decoding, without recursion (:func:`json_depth`).

A failure is an :class:`~spatial.errors.InvalidInputError` (400) naming where
the problem is and which limit was passed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from array import array
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from spatial.errors import InvalidInputError

#: Deepest nesting of arrays and objects accepted in a JSON document. A GeoJSON
#: MultiPolygon feature nests 6 levels, an execute request with a polygon 8, a
#: CQL2 JSON filter 2 per level of its expression (see :data:`spatial.cql.MAX_FILTER_DEPTH`).
MAX_JSON_DEPTH = 100
#: Longest whole number accepted in JSON, in digits (Python's own conversion limit).
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300

_ZH_TEXT = " / 含有不允许的字符"
_ZH_JSON = " / 不是合法的 JSON"
_ZH_DEPTH = " / 嵌套层数过多"
_ZH_NUMBER = " / 数值须为有限数"
#: Code points text may not hold: NUL, and any surrogate (in a Python string
#: from UTF-8 or a JSON decoder a surrogate is always a lone one).
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
#: A JSON string, or an unterminated one up to the end (so that every match
#: attempt succeeds and the scan stays linear; the decoder reports the error).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
#: Opening bracket → +1, closing → -1 (as signed bytes).
_STEPS = str.maketrans({"[": "\x01", "{": "\x01", "]": "\xff", "}": "\xff"})
_CHUNK = 1 << 16


def bad_character(text: str) -> str | None:
    """Describe the first NUL or lone surrogate in ``text``, None when there is none.

    Examples
    --------
    >>> bad_character("a\\x00b")
    'a NUL character (U+0000) at character 1'
    >>> bad_character("\\ud800")
    'a lone surrogate (U+D800) at character 0'
    >>> bad_character("三里屯 ok") is None
    True
    """
    match = _BAD_CHARACTER.search(text)
    if match is None:
        return None
    char = match.group()
    what = "a NUL character (U+0000)" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
    return f"{what} at character {match.start()}"


def check_text(text: str, where: str) -> None:
    """Refuse a NUL character or a lone surrogate in a piece of text.

    Parameters
    ----------
    text : str
        The text (a query parameter, a path, a text body).
    where : str
        What it is, for the message (``"query parameter 'q'"``).

    Raises
    ------
    InvalidInputError
        Naming ``where``, the character and its position.

    Examples
    --------
    >>> check_text("三里屯", "query parameter 'q'")
    >>> check_text("a\\x00b", "query parameter 'q'")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: query parameter 'q' holds a NUL character (U+0000) \
at character 1, which text may not contain / 含有不允许的字符
    """
    found = bad_character(text)
    if found is not None:
        raise InvalidInputError(f"{where} holds {found}, which text may not contain{_ZH_TEXT}")


def json_depth(text: str, limit: int | None = None) -> int:
    """The deepest nesting of arrays and objects in a JSON text, counted without recursion.

    Brackets inside strings do not count. The text need not be valid JSON (the
    decoder judges that afterwards); the count is linear in its length.

    Parameters
    ----------
    text : str
        The JSON text.
    limit : int, optional
        Stop counting as soon as the depth passes it (the result is then
        ``limit + 1`` or more).

    Returns
    -------
    int
        0 for a scalar, 1 for ``[]`` or ``{}``, and so on.

    Examples
    --------
    >>> json_depth('{"a": [1, [2, "]]]"]], "b": {}}')
    3
    >>> json_depth("[" * 100000 + "]" * 100000, limit=100) > 100
    True
    >>> json_depth('"just a string"')
    0
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    steps = array("b", brackets.translate(_STEPS).encode("latin-1"))
    depth = deepest = 0
    for start in range(0, len(steps), _CHUNK):
        running = list(accumulate(steps[start:start + _CHUNK], initial=depth))
        deepest = max(deepest, max(running))
        depth = running[-1]
        if limit is not None and deepest > limit:
            break
    return deepest


def _number_hooks(where: str) -> dict[str, Any]:
    """``json.loads`` hooks refusing what is not RFC 8259 JSON, naming ``where``."""

    def constant(name: str) -> Any:
        raise InvalidInputError(
            f"{where} holds {name}, which is not JSON (RFC 8259 has no NaN or Infinity)"
            f"{_ZH_JSON}")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{where} holds the number {text[:40]}, beyond the range of a double{_ZH_JSON}")
        return value

    def bounded(text: str) -> int:
        if len(text) - text.startswith("-") > MAX_INT_DIGITS:
            raise InvalidInputError(
                f"{where} holds a whole number of {len(text)} digits; at most "
                f"{MAX_INT_DIGITS} are accepted{_ZH_JSON}")
        return int(text)

    return {"parse_constant": constant, "parse_float": finite, "parse_int": bounded}


def loads(text: str | bytes, where: str = "request body", *,
          max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON strictly: UTF-8, RFC 8259, nesting and text checked.

    Parameters
    ----------
    text : str or bytes
        The document; bytes must be UTF-8.
    where : str
        What it is, for messages (``"request body"``, ``"filter"``).
    max_depth : int
        The deepest nesting of arrays and objects accepted.

    Returns
    -------
    object
        The decoded value.

    Raises
    ------
    InvalidInputError
        Not UTF-8, nested too deep, not well-formed, ``NaN``/``Infinity`` or
        a number beyond a double, or a string or key holding NUL or a lone
        surrogate; the message names which and where.

    Examples
    --------
    >>> loads(b'{"a": [1, 2.5, "x"]}')
    {'a': [1, 2.5, 'x']}
    >>> loads(b'{"x": NaN}')
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body holds NaN, which is not JSON (RFC 8259 \
has no NaN or Infinity) / 不是合法的 JSON
    >>> loads("[" * 101 + "]" * 101)
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body nests arrays and objects more than 100 \
levels deep; at most 100 are accepted / 嵌套层数过多
    >>> loads('{"username": "a\\\\u0000b"}')
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: request body at $.username holds a NUL character \
(U+0000) at character 1, which text may not contain / 含有不允许的字符
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{where} is not UTF-8 (byte {exc.start}) / 请求体不是 UTF-8 编码") from None
    if json_depth(text, max_depth) > max_depth:
        raise InvalidInputError(
            f"{where} nests arrays and objects more than {max_depth} levels deep; "
            f"at most {max_depth} are accepted{_ZH_DEPTH}")
    try:
        value = json.loads(text, **_number_hooks(where))
    except json.JSONDecodeError as exc:
        zh = " / 请求体不是合法的 JSON" if where == "request body" else _ZH_JSON
        raise InvalidInputError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            f"{zh}") from None
    # Decoded text can hold NUL or a surrogate only through a \u escape.
    if "\\u" in text:
        check_json_value(value, where, max_depth=max_depth)
    return value


def check_json_value(value: Any, where: str = "request body", *,
                     max_depth: int = MAX_JSON_DEPTH) -> None:
    """Check an already decoded JSON value, walking it without recursion.

    For values that did not come through :func:`loads` (a mapping handed to
    :func:`spatial.editing.create_feature`, a job's inputs).

    Parameters
    ----------
    value : object
        Dicts, lists, strings, numbers, booleans and None.
    where : str
        What it is, for messages.
    max_depth : int
        The deepest nesting of dicts and lists accepted.

    Raises
    ------
    InvalidInputError
        A non-finite number, a string or key holding NUL or a lone surrogate,
        or nesting deeper than ``max_depth``; named by its path (``$.a[2]``).

    Examples
    --------
    >>> check_json_value({"x": [1.5, "ok"]}, "inputs")
    >>> check_json_value({"x": [1.5, float("nan")]}, "inputs")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: inputs at $.x[1] holds nan, which is not a finite \
number / 数值须为有限数
    """
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            found = bad_character(item)
            if found is not None:
                raise InvalidInputError(
                    f"{where} at {path} holds {found}, which text may not contain{_ZH_TEXT}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(
                    f"{where} at {path} holds {item!r}, which is not a finite number{_ZH_NUMBER}")
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                raise InvalidInputError(
                    f"{where} nests arrays and objects more than {max_depth} levels deep; "
                    f"at most {max_depth} are accepted{_ZH_DEPTH}")
            if isinstance(item, Mapping):
                for key, member in item.items():
                    name = str(key)
                    found = bad_character(name)
                    if found is not None:
                        raise InvalidInputError(
                            f"{where} at {path} has a key holding {found}, which text may "
                            f"not contain{_ZH_TEXT}")
                    stack.append((member, f"{path}.{name}", depth + 1))
            else:
                stack.extend((member, f"{path}[{i}]", depth + 1)
                             for i, member in enumerate(item))
