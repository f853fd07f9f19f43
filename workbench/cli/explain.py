"""`explain`: a run's model on one input, step by step (the Inspect window's headless twin).

    python main.py explain RUN --sample 12 [--split val] [--json]
    python main.py explain RUN --input "2024-03-01" [--target "..."] [--beam 3] [--json]
    python main.py explain RUN --values "0.1,2;0.3,1" [--json]
    python main.py explain RUN --formula "sin(t/3) + 0.1*t" [--steps 40] [--json]

RUN is a run id (in --runs-dir) or a run folder: finished, stopped, crashed, or training
now (its latest checkpoint). --json prints one line: the keys input, outputs, hidden,
cell (LSTM), gates and connectivity (workbench.explain.Explanation.to_json). A bad
input (an unknown symbol, nothing typed, a wrong number of features, NaN, a formula
outside the whitelist) exits 2 with one line.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from workbench.cli import common
from workbench.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add `explain`."""
    p = subparsers.add_parser(
        "explain", help="a run's model on your own input: outputs, hidden states, gates, "
        "connectivity",
        description="Run a trained model on one input (a dataset sample, typed text, values "
        "or a formula of t) and show its outputs, every hidden state and gate, and how much "
        "each output step depends on each input step (connectivity, float64 gradients).")
    p.add_argument("run", metavar="RUN", help="run id or run folder")
    p.add_argument("--runs-dir", metavar="DIR", default=None,
                   help="runs folder (default: $SEQUENCE_WORKBENCH_HOME/runs or the user's "
                   "data folder)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--sample", type=int, metavar="N", help="sample N of --split")
    source.add_argument("--input", metavar="TEXT",
                        help="token text in the run's vocabulary (characters when every "
                        "symbol is one character, else words)")
    source.add_argument("--values", metavar="V",
                        help="continuous values: steps by ';', features by ',' (one feature: "
                        "commas may separate steps)")
    source.add_argument("--formula", metavar="F",
                        help="a formula of t = 0, 1, ...: numbers, t, + - * / **, and sin cos "
                        "tan exp log sqrt abs tanh minimum maximum clip (one per feature, by ';')")
    p.add_argument("--split", default="val", help="the split of --sample (default: val)")
    p.add_argument("--target", metavar="T", help="a target for --input or --values (its "
                   "teacher-forced output is shown too)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="input steps of --formula (default: the training input length)")
    p.add_argument("--output-steps", type=int, metavar="N",
                   help="most output steps to generate (default: the training target length)")
    p.add_argument("--beam", type=int, default=1, metavar="K",
                   help="beam width for token targets (default 1: greedy)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                   help="which checkpoint (default: best, else latest)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=cmd_explain)


def source_from_args(args: argparse.Namespace) -> Any:
    """The workbench.explain input the flags describe (ConfigError for flags that clash)."""
    from workbench.explain import FormulaInput, SampleInput, TextInput, ValuesInput

    if args.target is not None and args.input is None and args.values is None:
        raise ConfigError("--target goes with --input or --values")
    if args.steps is not None and args.formula is None:
        raise ConfigError("--steps goes with --formula (for generated steps: --output-steps)")
    if args.sample is not None:
        return SampleInput(args.sample, args.split)
    if args.input is not None:
        return TextInput(args.input, args.target)
    if args.values is not None:
        return ValuesInput(args.values, args.target)
    return FormulaInput(args.formula, args.steps)


def cmd_explain(args: argparse.Namespace) -> int:
    from workbench.explain import explain

    source = source_from_args(args)
    result = explain(args.run, source, which=args.checkpoint, beam=args.beam,
                     output_steps=args.output_steps, runs_dir=args.runs_dir)
    if args.json:
        common.print_json(result.to_json())
    else:
        print(describe(result))
    return 0


def describe(result: Any) -> str:
    """The explanation as text: the sequences, the notes, and per output step where its
    connectivity is largest."""
    lines = [f"run {result.run_id} ({result.cell}, {result.checkpoint} checkpoint, step "
             f"{result.step:,}), {result.source}"]
    rows = [("input", "input", result.input),
            ("generated" + (f" (beam {result.beam})" if result.beam > 1 else ""), "outputs",
             result.outputs),
            ("teacher-forced", "teacher_forced", result.teacher_forced),
            ("target", "target", result.target)]
    for name, which, values in rows:
        if values is not None:
            lines.append(f"  {name:<18} {_sequence(values, result.text(which))}")
    for note in result.notes:
        lines.append(f"  note: {note}")
    c = result.connectivity
    lines.append(f"  connectivity ({c.shape[0]} output x {c.shape[1]} input steps, "
                 f"{'d logit[chosen]' if result.target_kind == 'tokens' else 'd y'} / "
                 f"{'d e_t' if result.input_kind == 'tokens' else 'd x_t'}):")
    for t_out in range(min(c.shape[0], 20)):
        row = c[t_out]
        peak = int(np.argmax(row))
        lines.append(f"    output {t_out + 1:>3}: most on input {peak + 1} ({row[peak]:.3g}); "
                     f"input 1: {row[0]:.3g}, input {c.shape[1]}: {row[-1]:.3g}")
    if c.shape[0] > 20:
        lines.append(f"    … {c.shape[0] - 20} more output steps (--json has them all)")
    return "\n".join(lines)


def _sequence(values: np.ndarray, text: str | None) -> str:
    if text is not None:
        return text or "(nothing)"
    flat = np.asarray(values)
    shown = "; ".join(",".join(f"{v:.4g}" for v in np.atleast_1d(step)) for step in flat[:12])
    return shown + (f"; … ({flat.shape[0]} steps)" if flat.shape[0] > 12 else "")
