"""Answer extraction from completions, and number parsing for the numeric verifier.

Every function here is total: any string in, a value or None out, never an exception, in time linear in
the length of the text (completions are model output, so adversarial inputs are the normal case).
"""

from __future__ import annotations

import re
from fractions import Fraction

from eapo.tasks.config import ANSWER_FALLBACKS, ANSWER_FORMATS

_OPEN_TAG = re.compile(r"<answer\s*>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"</answer\s*>", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")
_BRACE = re.compile(r"[{}]")
# What may follow a strict final answer: closing math delimiters and a period (boxed), a period (number).
_BOXED_TAIL = re.compile(r"(?:\s|\$|\\\]|\\\)|\.)*")
_NUMBER_TAIL = re.compile(r"\s*\.?\s*")

# A number in running text: thousands groups (1,234), decimals, fractions a/b; ASCII digits only so that
# what we extract is what `Fraction` parses. The sign is checked apart (see `_last_number_span`).
_NUMBER_IN_TEXT = re.compile(
    r"(?P<sign>[-−])?(?P<body>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?(?:/[0-9]+)?)"
)
# Characters that make a following minus a subtraction ("5-3"), not a sign.
_OPERAND_END = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_)]}")

# A whole string that is one number (after `_strip_decorations`); exponents are bounded so that parsing
# can never build a huge integer.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)?(?:\.[0-9]*)?(?:[eE][+-]?[0-9]{1,3})?")
_FRACTION = re.compile(r"([+-]?)([0-9]+)\s*/\s*([0-9]+)")
_LATEX_FRACTION = re.compile(
    r"([+-]?)\\[dt]?frac\s*(?:\{\s*([0-9]+)\s*\}|([0-9]))\s*(?:\{\s*([0-9]+)\s*\}|([0-9]))"
)
_MAX_NUMBER_CHARS = 1000  # longer "numbers" are junk; also keeps int() under Python's 4300-digit limit


def extract_answer(
    text: str,
    answer_format: str = "answer_tag",
    fallback: str | None = "last_number",
    *,
    strict: bool = False,
) -> str | None:
    """The final answer in `text`, or None if there is none.

    `answer_format`: `answer_tag` (content of the last `<answer>...</answer>`), `boxed` (content of the
    last `\\boxed{...}` with balanced braces) or `last_number`. When the requested format is absent or
    empty, `fallback` (`last_number`, `last_line` or None) decides. With `strict`, only a well-formed
    final answer counts and `fallback` is not used (see `strict_answer`). Never raises on any text (a
    format or fallback name it does not know is a ValueError).
    """
    if not isinstance(text, str):
        return None
    if answer_format not in ANSWER_FORMATS or (fallback is not None and fallback not in ANSWER_FALLBACKS):
        raise ValueError(
            f"answer_format {answer_format!r} / fallback {fallback!r}: expected one of {ANSWER_FORMATS} "
            f"and one of {ANSWER_FALLBACKS} or None"
        )
    if strict:
        return strict_answer(text, answer_format)
    if answer_format == "answer_tag":
        found = _last_tagged(text)
    elif answer_format == "boxed":
        found = _last_boxed(text)
    else:
        found = last_number(text)
    if found:
        return found
    if fallback == "last_number" and answer_format != "last_number":
        return last_number(text)
    if fallback == "last_line":
        return _last_line(text)
    return None


def strict_answer(text: str, answer_format: str = "answer_tag") -> str | None:
    """The final answer of `text` if it is given exactly once, well-formed, at the end; else None.

    - `answer_tag`: exactly one `<answer>` and one `</answer>`, in that order, with non-empty content and
      nothing but whitespace after the closing tag. Several tags are malformed (a completion that writes
      two answers hedges; crediting either would reward it), and so is text after the tag (the answer is
      not final). Worked steps before the opening tag are free.
    - `boxed`: exactly one `\\boxed{...}` with balanced braces and non-empty content, followed by nothing
      but whitespace, `$`, `\\]`, `\\)` or a period.
    - `last_number`: the text ends in a number (trailing whitespace and one period allowed).

    No fallback: "2 - 0 = 2F" has no strict answer in any format. Linear time, never raises on a str.
    """
    if not isinstance(text, str):
        return None
    if answer_format == "answer_tag":
        opens, closes = list(_OPEN_TAG.finditer(text)), list(_CLOSE_TAG.finditer(text))
        if len(opens) != 1 or len(closes) != 1 or opens[0].end() > closes[0].start():
            return None
        if text[closes[0].end() :].strip():
            return None
        return text[opens[0].end() : closes[0].start()].strip() or None
    if answer_format == "boxed":
        starts = list(_BOXED.finditer(text))
        if len(starts) != 1:
            return None
        end = _closing_brace(text, starts[0].end() - 1)
        if end is None or _BOXED_TAIL.fullmatch(text, end + 1) is None:
            return None
        return text[starts[0].end() : end].strip() or None
    if answer_format == "last_number":
        last = _last_match(_NUMBER_IN_TEXT, text, len(text))
        if last is None or _NUMBER_TAIL.fullmatch(text, last.end()) is None:
            return None
        return last_number(text)
    raise ValueError(f"answer_format {answer_format!r}: expected one of {ANSWER_FORMATS}")


def format_rate(completions: list[str], answer_format: str = "answer_tag") -> float:
    """Fraction of `completions` with a strict final answer (`strict_answer`); 0.0 for none."""
    if not completions:
        return 0.0
    return sum(strict_answer(c, answer_format) is not None for c in completions) / len(completions)


def _closing_brace(text: str, start: int) -> int | None:
    """Position of the `}` that closes the `{` at `start`, or None when the braces never balance."""
    depth = 0
    for brace in _BRACE.finditer(text, start):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return None


def last_number(text: str) -> str | None:
    """The last number in `text` as written, minus thousands separators ("1,234" -> "1234"), or None."""
    last = _last_match(_NUMBER_IN_TEXT, text, len(text))
    if last is None:
        return None
    body = last.group("body").replace(",", "")
    sign = last.group("sign")
    # A minus right after an operand is subtraction: the last number of "7-3" is 3, of "x = -3" is -3.
    is_sign = sign is not None and (last.start() == 0 or text[last.start() - 1] not in _OPERAND_END)
    return "-" + body if is_sign else body


def parse_number(text: str | None) -> Fraction | None:
    """`text` as an exact number if the whole string is one, else None.

    Accepts "12", "12.0", "-3", "+3", "1,200", "1.5e3", "3/4", "\\frac{3}{4}", "\\dfrac34", with
    surrounding `$`, `\\(...\\)`, `\\boxed{...}`, a trailing period and a Unicode minus. Never raises.
    """
    if text is None or len(text) > _MAX_NUMBER_CHARS:
        return None
    s = _strip_decorations(text)
    if not s:
        return None
    try:
        if match := _LATEX_FRACTION.fullmatch(s):
            sign, num_a, num_b, den_a, den_b = match.groups()
            numerator, denominator = int(num_a or num_b), int(den_a or den_b)
            return (
                None if denominator == 0 else Fraction(-numerator if sign == "-" else numerator, denominator)
            )
        if match := _FRACTION.fullmatch(s):
            sign, numerator_text, denominator_text = match.groups()
            numerator, denominator = int(numerator_text), int(denominator_text)
            return (
                None if denominator == 0 else Fraction(-numerator if sign == "-" else numerator, denominator)
            )
        if any(c.isdigit() for c in s) and _DECIMAL.fullmatch(s):
            return Fraction(s.replace(",", ""))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def _strip_decorations(text: str) -> str:
    s = text.strip().replace("−", "-").replace("{,}", ",").replace("\\,", "").replace("\\!", "")
    for _ in range(3):  # nested wrappers such as "$\boxed{12}$"
        before = s
        if s.startswith("\\boxed{") and s.endswith("}"):
            s = s[len("\\boxed{") : -1].strip()
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        if s == before:
            break
    return s


def _last_tagged(text: str) -> str | None:
    """Content of the last complete <answer>...</answer> pair (two linear scans, no backtracking)."""
    close = _last_match(_CLOSE_TAG, text, len(text))
    if close is None:
        return None
    opening = _last_match(_OPEN_TAG, text, close.start())
    if opening is None:
        return None
    content = text[opening.end() : close.start()].strip()
    return content or None


def _last_match(pattern: re.Pattern[str], text: str, end: int) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text, 0, end):  # noqa: B007  (keep the last match)
        pass
    return last


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces balance.

    One pass over the braces pairs each `{` with its `}` (a stack), so many unclosed `\\boxed{` cost
    linear, not quadratic, time.
    """
    starts = [m.end() - 1 for m in _BOXED.finditer(text)]  # positions of each boxed's "{"
    if not starts:
        return None
    closing_of: dict[int, int] = {}
    stack: list[int] = []
    for brace in _BRACE.finditer(text, starts[0]):
        if brace.group() == "{":
            stack.append(brace.start())
        elif stack:
            closing_of[stack.pop()] = brace.start()
    for start in reversed(starts):
        end = closing_of.get(start)
        if end is not None:
            content = text[start + 1 : end].strip()
            if content:
                return content
    return None


def _last_line(text: str) -> str | None:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return None
