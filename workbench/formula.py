"""A formula of t, such as `sin(t/3) + 0.1*t`, made into a series of values, safely.

The inspector lets a user type the input of a continuous model as a formula. The
text is parsed with Python's `ast` module (parsing runs nothing) and the tree is
evaluated by walking it here, node by node, against a whitelist:

- numbers (int or float literals), the name `t`, parentheses;
- the operators + - * / ** and unary - (and unary +);
- calls of a few numpy functions by name, with positional arguments only:
  sin cos tan exp log sqrt abs tanh (one argument), minimum maximum (two), clip (three).

Anything else (another name, an attribute, a subscript, a lambda, a comparison, a
string, a keyword argument, ...) is refused with a ConfigError naming it and its
column. The text is never given to eval, exec or compile: only `ast.parse` reads it.
Every value is a float64 numpy array (a literal too), so `9**9**9` is an overflow to
inf, not an integer that takes forever; a result that is not finite at some t is
refused, naming the first such t.

t takes the values 0, 1, ..., steps - 1 (the time step's index).
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import numpy as np

from workbench.errors import ConfigError

MAX_FORMULA_CHARS = 1000
MAX_FORMULA_STEPS = 100_000
MAX_DEPTH = 60  # nesting of the tree: deeper is refused before it is walked

# name -> (numpy function, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "tan": (np.tan, 1),
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "tanh": (np.tanh, 1),
    "minimum": (np.minimum, 2),
    "maximum": (np.maximum, 2),
    "clip": (np.clip, 3),
}

_BINARY: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY: dict[type, Callable[[np.ndarray], np.ndarray]] = {
    ast.USub: np.negative,
    ast.UAdd: np.positive,
}

ALLOWED = ("numbers, t, + - * / **, unary -, parentheses and the functions "
           + " ".join(FUNCTIONS))


def parse_formula(text: str) -> ast.Expression:
    """The checked syntax tree of `text`; ConfigError naming the first thing not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the formula is empty: type an expression of t, e.g. sin(t/3)")
    if len(text) > MAX_FORMULA_CHARS:
        raise ConfigError(f"the formula has {len(text)} characters; at most "
                          f"{MAX_FORMULA_CHARS} are allowed")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ConfigError(f"the formula {text.strip()!r} is not an expression{where}: "
                          f"{exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ConfigError("the formula is nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer literal of thousands of digits
        raise ConfigError(f"the formula cannot be read: {exc}") from None
    _check(tree.body, 0)
    return tree


def evaluate_formula(text: str, steps: int) -> np.ndarray:
    """The formula's values at t = 0 .. steps - 1, float64 (steps,).

    ConfigError for a formula outside the whitelist, a bad number of steps, or a value
    that is not finite (naming the first t where it is not).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not (
            1 <= steps <= MAX_FORMULA_STEPS):
        raise ConfigError(f"the formula's steps must be an integer in 1..{MAX_FORMULA_STEPS}, "
                          f"got {steps!r}")
    tree = parse_formula(text)
    t = np.arange(int(steps), dtype=np.float64)
    with np.errstate(all="ignore"):
        values = np.broadcast_to(_evaluate(tree.body, t), t.shape).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        first = int(bad[0])
        raise ConfigError(f"the formula {text.strip()!r} is {values[first]} at t = {first} "
                          f"({bad.size} of {steps} steps are not finite)")
    return values


# -- the whitelist --------------------------------------------------------------------


def _refuse(node: ast.AST, what: str) -> ConfigError:
    column = getattr(node, "col_offset", None)
    where = f" at column {column + 1}" if column is not None else ""
    return ConfigError(f"the formula may not contain {what}{where}; allowed: {ALLOWED}")


def _check(node: ast.AST, depth: int) -> None:
    """Refuse any node outside the whitelist (before anything is evaluated)."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"the formula is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _refuse(node, f"the literal {value!r}")
        try:
            float(value)
        except OverflowError:
            raise _refuse(node, "a number too large for a float") from None
        return
    if isinstance(node, ast.Name):
        if node.id != "t":
            raise _refuse(node, f"the name {node.id!r}")
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise _refuse(node, f"the operator {type(node.op).__name__}")
        _check(node.left, depth + 1)
        _check(node.right, depth + 1)
        return
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise _refuse(node, f"the operator {type(node.op).__name__}")
        _check(node.operand, depth + 1)
        return
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name):
            raise _refuse(node, "a call of anything but a listed function by its name")
        if func.id not in FUNCTIONS:
            raise _refuse(func, f"the function {func.id!r}")
        if node.keywords:
            raise _refuse(node, f"keyword arguments (in {func.id})")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _refuse(node, f"*arguments (in {func.id})")
        arity = FUNCTIONS[func.id][1]
        if len(node.args) != arity:
            raise ConfigError(f"the formula calls {func.id} with {len(node.args)} argument"
                              f"{'s' if len(node.args) != 1 else ''}; it takes {arity}")
        for arg in node.args:
            _check(arg, depth + 1)
        return
    raise _refuse(node, _describe(node))


def _describe(node: ast.AST) -> str:
    names = {
        ast.Attribute: "attribute access (.)", ast.Subscript: "indexing ([...])",
        ast.Lambda: "a lambda", ast.Compare: "a comparison", ast.BoolOp: "and/or",
        ast.IfExp: "if/else", ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict",
        ast.Set: "a set", ast.JoinedStr: "an f-string", ast.NamedExpr: "an assignment (:=)",
        ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator",
        ast.Await: "await", ast.Starred: "*arguments",
    }
    return names.get(type(node), f"a {type(node).__name__} expression")


def _evaluate(node: ast.AST, t: np.ndarray) -> np.ndarray:
    """The value of a checked node: a float64 array (a literal as a 0-d array)."""
    if isinstance(node, ast.Constant):
        return np.asarray(float(node.value), dtype=np.float64)
    if isinstance(node, ast.Name):
        return t
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, t), _evaluate(node.right, t))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, t))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    function = FUNCTIONS[node.func.id][0]
    return np.asarray(function(*(_evaluate(a, t) for a in node.args)), dtype=np.float64)
