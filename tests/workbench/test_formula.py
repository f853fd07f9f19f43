"""Formulas of t (workbench.formula): the values a user expects, and nothing outside the
whitelist ever runs: names, attributes, calls of anything else, lambdas, strings are
refused with one line naming them, and Python's eval/exec are never used."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.formula import FUNCTIONS, evaluate_formula, parse_formula


def test_a_formula_gives_its_values_at_t_0_to_steps_minus_1():
    t = np.arange(30.0)
    np.testing.assert_allclose(evaluate_formula("sin(t/3) + 0.1*t", 30), np.sin(t / 3) + 0.1 * t)
    np.testing.assert_allclose(evaluate_formula("-t**2 / (1 + t)", 30), -t**2 / (1 + t))
    np.testing.assert_allclose(evaluate_formula("clip(t, 2, 5)", 30), np.clip(t, 2, 5))
    np.testing.assert_allclose(evaluate_formula("maximum(cos(t), minimum(t, 0.5))", 30),
                               np.maximum(np.cos(t), np.minimum(t, 0.5)))
    np.testing.assert_allclose(evaluate_formula("3", 4), [3, 3, 3, 3])  # a constant fills every t
    np.testing.assert_allclose(evaluate_formula("exp(-t) + sqrt(t) + abs(t - 3) + tanh(t) "
                                                "+ log(1 + t) + tan(t / 100)", 5),
                               np.exp(-t[:5]) + np.sqrt(t[:5]) + np.abs(t[:5] - 3)
                               + np.tanh(t[:5]) + np.log1p(t[:5]) + np.tan(t[:5] / 100))


def test_every_listed_function_is_numpys():
    assert set(FUNCTIONS) == {"sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh",
                              "minimum", "maximum", "clip"}


@pytest.mark.parametrize("text, named", [
    ("__import__('os')", "the function '__import__'"),
    ("__import__('os').system('touch HACKED')", "a call of anything but a listed function"),
    ("t.real", "attribute access"),
    ("().__class__.__bases__[0]", "indexing"),
    ("().__class__", "attribute access"),
    ("(lambda: 1)()", "a call of anything but a listed function"),
    ("lambda t: t", "a lambda"),
    ("open('x')", "the function 'open'"),
    ("np.sin(t)", "a call of anything but a listed function"),
    ("x + 1", "the name 'x'"),
    ("'a' * 3", "the literal 'a'"),
    ("t[0]", "indexing"),
    ("t if t else 1", "if/else"),
    ("t > 1", "a comparison"),
    ("[t for t in t]", "a comprehension"),
    ("sin(t=t)", "keyword arguments"),
    ("sin(*t)", "*arguments"),
    ("t // 2", "the operator FloorDiv"),
    ("t % 2", "the operator Mod"),
    ("~t", "the operator Invert"),
    ("True + t", "the literal True"),
    ("1j * t", "the literal 1j"),
    ("(y := 2)", "an assignment"),
])
def test_anything_outside_the_whitelist_is_refused_naming_it(text, named, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        evaluate_formula(text, 5)
    message = str(caught.value)
    assert named in message and "\n" not in message
    assert not (tmp_path / "HACKED").exists()


@pytest.mark.parametrize("text, match", [
    ("", "empty"), ("   ", "empty"), ("sin(", "not an expression"), ("sin(t, 2)", "takes 1"),
    ("clip(t, 1)", "takes 3"), ("1/0 + t", "inf at t = 0"), ("log(t)", "-inf at t = 0"),
    ("9**9**9", "inf at t = 0"), ("sqrt(t - 2)", "nan at t = 0"),
    ("1" * 400 + "0", "too large for a float"), ("t" + " + t" * 400, "characters"),
])
def test_bad_formulas_are_refused_with_one_line(text, match):
    with pytest.raises(ConfigError, match=match) as caught:
        evaluate_formula(text, 5)
    assert "\n" not in str(caught.value)


def test_bad_step_counts_are_refused():
    for steps in (0, -1, 10**9, 2.5, True):
        with pytest.raises(ConfigError, match="steps"):
            evaluate_formula("t", steps)


def test_deep_nesting_is_refused_before_it_is_walked():
    with pytest.raises(ConfigError, match="nested"):
        parse_formula("-" * 200 + "t")


def test_no_eval_or_exec_reads_the_text(monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    np.testing.assert_allclose(evaluate_formula("2*t + 1", 3), [1, 3, 5])
