"""Reading answers out of completions: the last ``\\boxed{}``, a final number, exact arithmetic."""

from __future__ import annotations

import ast
import operator
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any


def last_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` in ``text`` (nested braces allowed), else None.

    Example:
        >>> last_boxed(r"so \\boxed{1} or rather \\boxed{\\frac{1}{2}}.")
        '\\\\frac{1}{2}'
        >>> last_boxed(r"\\boxed{unbalanced") is None
        True
    """
    if not isinstance(text, str):
        return None
    pos = text.rfind("\\boxed")
    while pos >= 0:
        i = pos + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j]
        pos = text.rfind("\\boxed", 0, pos)
    return None


def extract_answer(text: str) -> str | None:
    """The answer of a completion: the last ``\\boxed{}`` content if any, else the last integer, else None.

    Example:
        >>> extract_answer(r"12 + 3 = 15, so \\boxed{15}")
        '15'
        >>> extract_answer("it is -7, I think")
        '-7'
        >>> extract_answer("no idea") is None
        True
    """
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    found = re.findall(r"-?\d+", text) if isinstance(text, str) else []
    return found[-1] if found else None


def _to_int(text: str | None) -> int | None:
    """``text`` as an integer (spaces and ``$`` ignored), None if it is not one or has over 30 digits."""
    if text is None:
        return None
    s = text.replace(" ", "").strip("$")
    return int(s) if re.fullmatch(r"[-+]?\d{1,30}", s) else None


_OPS: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                                             "/": operator.truediv}
_BINOPS = {ast.Add: _OPS["+"], ast.Sub: _OPS["-"], ast.Mult: _OPS["*"], ast.Div: _OPS["/"]}


def _safe_eval(expr: str, numbers: list[int] | None = None) -> Fraction | None:
    """Evaluate ``+ - * /`` integer arithmetic exactly through ``ast`` (never ``eval``); None if not allowed.

    With ``numbers``, the literals must be exactly that multiset. Division by zero gives None.
    """
    if len(expr) > 300 or "**" in expr or not re.fullmatch(r"[\d+\-*/()\s]+", expr):
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    literals: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError("disallowed node")

    try:
        value = walk(tree.body)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None
    if numbers is not None and sorted(literals) != sorted(numbers):
        return None
    return value




def _normalise(text: str) -> str:
    """The ``exact`` matcher's form: no spaces, ``\\left``/``\\right``, thin spaces, outer ``$`` or final dot."""
    return re.sub(r"\\left|\\right|\\!|\\,|\s", "", text).strip("$").rstrip(".").lower()


def _mv_timeout(key: str) -> dict[str, None]:
    """math-verify's timeouts use SIGALRM, which fails outside the main thread: switch them off there."""
    return {} if threading.current_thread() is threading.main_thread() else {key: None}
