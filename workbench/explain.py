"""The inspector's core: a trained model on the user's own input, step by step.

`explain(run, source)` loads a run's checkpoint and answers "what does it do on *this*
input?" (an `Explanation`): the input, the generated output (greedy, or beam search
for tokens), the teacher-forced output when a target is given, every hidden state of
encoder and decoder (LSTM: also c_t), every gate activation per step (LSTM, GRU), and
the connectivity matrix, how much each output step depends on each input step.

The input (`source`) is one of:

- `SampleInput(split, index)`: a sample of the run's dataset, with its target;
- `TextInput(text)`: token text in the run's vocabulary, split into characters when
  every vocabulary entry past the reserved ones is one character, else on whitespace
  (`tokenize`); a symbol outside the vocabulary is refused, naming it and where it is;
- `ValuesInput(text)`: continuous values, steps separated by ';', features by ','
  (`parse_values`; with one feature and no ';', commas separate steps);
- `FormulaInput(formula, steps)`: a formula of t (workbench.formula: a whitelist walked
  over Python's ast, never eval).

Continuous values are given and shown in the data's own units (the run's recorded
normalization is applied before the model and undone after). Any length is accepted;
one that differs from the training data's is noted (`Explanation.notes`).

The connectivity matrix C (T_out x T_in):

    continuous targets: C[t', t] = || d y_t' / d x_t ||   (Frobenius norm of the
        F_out x F_in block; y in the targets' units, x in the inputs' units)
    token targets:      C[t', t] = || d logit_t'[chosen token] / d x_t ||
    where x_t is the input value at step t, or, for a token input, its embedding e_t.

The pass differentiated: a float64 copy of the model, in eval mode, run *teacher-forced
on its own generated output*: decoder step t' reads the start symbol (t' = 0) or the
generated output of step t' - 1, held constant. For token targets this is exactly
the free-running decoder (a chosen token passes no gradient); for continuous targets
it is the dependence through the encoder (and attention), not through the values fed
back. The derivatives are exact (autograd): one forward pass (the fused one: torch's
sequence kernels), then a backward pass batched over the output values (one one-hot
cotangent per value), in chunks that bound the memory. The hidden states and gates
shown come from a separate instrumented pass without gradients.

Looking changes nothing: the model is a loaded copy, in eval mode, and draws no random
number. `LoadedRun` keeps a loaded model (float32, as trained, and its float64 copy)
so that many explanations of one run (the GUI, on every edit) load it once.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.errors import ConfigError, DatasetError
from workbench.formula import evaluate_formula

MAX_INPUT_STEPS = 5000
MAX_OUTPUT_STEPS = 5000
MAX_BEAM = 64
# the float64 values one connectivity chunk may hold, about (8 bytes each: 256 MB)
CHUNK_VALUES = 2**25
# how the connectivity is computed (connectivity_matrix): "fused" differentiates the fused
# forward pass (the default); "unrolled" the instrumented one (the first version, slower,
# kept to measure against)
CONNECTIVITY_METHODS = ("fused", "unrolled")
WHICH = ("best", "latest")


# -- the inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleInput:
    """Sample `index` of `split` of the run's dataset (its target gives a teacher-forced output)."""

    index: int = 0
    split: str = "val"


@dataclass(frozen=True)
class TextInput:
    """Token text in the run's input vocabulary; `target`, optional, in the target vocabulary
    (its end token is added)."""

    text: str
    target: str | None = None


@dataclass(frozen=True)
class ValuesInput:
    """Continuous input values as text ("0.1,2;0.3,1": steps by ';', features by ',') or an
    array (T, F), in the data's own units; `target` likewise, optional."""

    values: str | np.ndarray
    target: str | np.ndarray | None = None


@dataclass(frozen=True)
class FormulaInput:
    """A formula of t (t = 0 .. steps - 1), one per input feature separated by ';'.
    steps None: the training input length."""

    formula: str
    steps: int | None = None


Source = SampleInput | TextInput | ValuesInput | FormulaInput


# -- the result ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SideTrace:
    """One side (encoder or decoder) step by step, every layer, float64.

    hidden: (layers, T, H) h_t. cell: (layers, T, H) c_t (LSTM), else None.
    gates: gate block name -> (layers, T, H) activation (LSTM i, f, g, o; GRU r, z, n;
    empty for a vanilla RNN).
    """

    hidden: np.ndarray
    cell: np.ndarray | None
    gates: dict[str, np.ndarray]

    @property
    def steps(self) -> int:
        return int(self.hidden.shape[1])


@dataclass(frozen=True, eq=False)
class Explanation:
    """What a model does on one input (see the module docstring).

    input: (T_in,) ids or (T_in, F_in) values (data units). outputs: the generated
    output, (T_out,) ids up to and including the end id, or (T_out, F_out) values.
    teacher_forced / target: the same shapes as the target (None without a target).
    *_tokens: the symbols of each id (token sides). encoder / decoder: SideTrace, the
    decoder fed the generated outputs (T_out steps). connectivity: (T_out, T_in).
    attention: (T_out, T_in) the decoder's attention weights, None without attention.
    notes: things the user should know (a length unlike the training data's, ...).
    """

    run_id: str
    checkpoint: str
    step: int
    cell: str
    input_kind: str
    target_kind: str
    input: np.ndarray
    outputs: np.ndarray
    encoder: SideTrace
    decoder: SideTrace
    connectivity: np.ndarray | None  # None: not computed (explain_loaded(connectivity=False))
    beam: int = 1
    teacher_forced: np.ndarray | None = None
    target: np.ndarray | None = None
    input_tokens: tuple[str, ...] | None = None
    output_tokens: tuple[str, ...] | None = None
    teacher_forced_tokens: tuple[str, ...] | None = None
    target_tokens: tuple[str, ...] | None = None
    attention: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    source: str = ""  # how the input was given, for a title: "val sample 12", "typed text"
    joined_input: bool = True  # token text is written without spaces (character mode)
    joined_target: bool = True

    def text(self, which: str) -> str | None:
        """"input", "outputs", "teacher_forced" or "target" as text (token sides), else None."""
        tokens = {"input": self.input_tokens, "outputs": self.output_tokens,
                  "teacher_forced": self.teacher_forced_tokens,
                  "target": self.target_tokens}[which]
        if tokens is None:
            return None
        return join_tokens(tokens, self.joined_input if which == "input" else self.joined_target)

    @property
    def layers(self) -> int:
        return int(self.encoder.hidden.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.hidden.shape[2])

    def to_json(self) -> dict[str, Any]:
        """The object `explain --json` prints: hidden, cell and gates of the top layer,
        T x H per side; connectivity T_out x T_in (plain lists; NaN becomes null
        through workbench.jsonsafe)."""
        from workbench.jsonsafe import json_safe

        def side(which: str, values: np.ndarray | None, tokens: tuple[str, ...] | None,
                 kind: str) -> dict[str, Any] | None:
            if values is None:
                return None
            out: dict[str, Any] = {"kind": kind, "steps": int(values.shape[0])}
            if kind == "tokens":
                out["ids"] = values
                out["tokens"] = list(tokens or ())
                out["text"] = self.text(which)
            else:
                out["values"] = values
            return out

        top = -1
        result: dict[str, Any] = {
            "run_id": self.run_id, "checkpoint": self.checkpoint, "step": self.step,
            "model": {"cell": self.cell, "hidden": self.hidden_size, "layers": self.layers},
            "source": self.source,
            "input": side("input", self.input, self.input_tokens, self.input_kind),
            "outputs": {
                "generated": side("outputs", self.outputs, self.output_tokens, self.target_kind),
                "teacher_forced": side("teacher_forced", self.teacher_forced,
                                       self.teacher_forced_tokens, self.target_kind),
                "target": side("target", self.target, self.target_tokens, self.target_kind),
                "beam": self.beam,
            },
            "hidden": {"encoder": self.encoder.hidden[top], "decoder": self.decoder.hidden[top]},
            "gates": {name: {"encoder": self.encoder.gates[name][top],
                             "decoder": self.decoder.gates[name][top]}
                      for name in self.encoder.gates},
            "connectivity": self.connectivity,
            "attention": self.attention,
            "notes": list(self.notes),
        }
        if self.encoder.cell is not None and self.decoder.cell is not None:
            result["cell"] = {"encoder": self.encoder.cell[top], "decoder": self.decoder.cell[top]}
        return json_safe(result)


# -- a loaded run -------------------------------------------------------------------------


@dataclass(frozen=True)
class SideInfo:
    """What the inspector knows of one side of the training data."""

    kind: str  # "continuous" | "tokens"
    steps: int | None  # the training data's (padded) length, None when unknown
    variable_length: bool = False
    features: int | None = None
    vocab: tuple[str, ...] | None = None
    reserved: tuple[int, ...] = (0, 1, 2)  # pad, start, end


@dataclass(eq=False)
class LoadedRun:
    """A model ready to explain inputs: float32 as trained, and a float64 copy.

    Built by `load_run` (a run's checkpoint) or `LoadedRun.from_model` (any Seq2Seq).
    `dataset` is the run's open dataset when a sample or a vocabulary needed it
    (opened on first use, closed by `close()`). Used by one thread at a time.
    """

    model: Any  # models.seq2seq.Seq2Seq, eval mode
    twin: Any  # its float64 copy, eval mode, no parameter requires grad
    normalization: Any | None
    source: SideInfo
    target: SideInfo
    run_id: str = ""
    checkpoint: str = ""
    step: int = 0
    notes: tuple[str, ...] = ()
    run: Any | None = None  # workbench.runs.Run
    version: tuple[Any, ...] = ()  # the checkpoint file's (path, mtime, size)
    dataset: Any | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, model: Any, normalization: Any | None = None, *,
                   input_vocab: Sequence[str] | None = None,
                   target_vocab: Sequence[str] | None = None,
                   input_steps: int | None = None, target_steps: int | None = None,
                   run_id: str = "") -> LoadedRun:
        """A LoadedRun of a Seq2Seq in memory (tests, demos); the vocabularies are needed
        for typed text."""
        cfg = model.config
        return cls(model.eval(), _float64_twin(model), normalization,
                   _side_info(cfg.source, input_steps, False, input_vocab),
                   _side_info(cfg.target, target_steps, False, target_vocab), run_id=run_id)

    @property
    def cell(self) -> str:
        return str(self.model.config.cell)

    def is_current(self) -> bool:
        """The checkpoint file it was loaded from is still the same (a run training now
        writes a new one from time to time); True for a model loaded from memory."""
        if self.run is None or not self.version:
            return True
        return _file_version(Path(self.version[0])) == self.version

    def open_dataset(self) -> Any:
        """The run's dataset with the run's split settings, opened once."""
        if self.dataset is None:
            if self.run is None:
                raise ConfigError("this model has no dataset: give the input as text or values")
            from workbench.run_service import open_run_data

            config = self.run.config()
            try:
                self.dataset = open_run_data(config)
            except ConfigError as exc:
                raise ConfigError(f"run {self.run_id}: its dataset is needed here and cannot "
                                  f"be opened: {exc}") from None
        return self.dataset

    def vocab(self, side: str) -> tuple[str, ...]:
        """The vocabulary of "source" or "target" (from the run's dataset when not known)."""
        info = self.source if side == "source" else self.target
        if info.vocab is not None:
            return info.vocab
        summary = self.open_dataset().summary
        spec = summary.inputs if side == "source" else summary.targets
        if spec.vocab is None:
            raise DatasetError(f"{summary.path}: the {side} side has no vocabulary")
        vocab = tuple(str(v) for v in spec.vocab)
        if side == "source":
            self.source = dataclasses.replace(self.source, vocab=vocab)
        else:
            self.target = dataclasses.replace(self.target, vocab=vocab)
        return vocab

    def close(self) -> None:
        """Release the dataset (the model goes with the object)."""
        dataset, self.dataset = self.dataset, None
        if dataset is not None:
            dataset.close()


def load_run(run: Any, which: str = "best", *, runs_dir: str | Path | None = None) -> LoadedRun:
    """Load a run (a workbench.runs.Run, a run id or a run folder) from its `which`
    checkpoint ("best", else the latest when it has none yet; or "latest").

    Any run will do: finished, stopped, crashed, or training now (its latest checkpoint).
    RunError / CheckpointError when there is no such run or no checkpoint yet.
    """
    from workbench.runs import Run, open_run

    if which not in WHICH:
        raise ConfigError(f"checkpoint {which!r} is not known: expected best or latest")
    if not isinstance(run, Run):
        run = open_run(run, runs_dir)
    notes: list[str] = []
    chosen = which
    if which == "best" and not run.checkpoint_path("best").is_file():
        chosen = "latest"
        notes.append("the run has no best checkpoint yet: its latest is shown")
    path = run.checkpoint_path(chosen)
    if not path.is_file():
        from workbench.errors import CheckpointError

        raise CheckpointError(f"run {run.run_id} has no checkpoint yet ({path} is missing): "
                              "wait for its first checkpoint")
    version = _file_version(path)
    model, normalization, state = run.load_model(chosen)
    dataset_meta = run.meta.get("dataset") or {}
    cfg = model.config
    position = state.get("position") or {}
    return LoadedRun(
        model, _float64_twin(model), normalization,
        _side_info(cfg.source, dataset_meta.get("input_steps"),
                   bool(dataset_meta.get("input_variable_length")), None),
        _side_info(cfg.target, dataset_meta.get("target_steps"),
                   bool(dataset_meta.get("target_variable_length")), None),
        run_id=run.run_id, checkpoint=chosen, step=int(position.get("step") or 0),
        notes=tuple(notes), run=run, version=version)


def explain(run: Any, source: Source, *, which: str = "best", beam: int = 1,
            output_steps: int | None = None, runs_dir: str | Path | None = None) -> Explanation:
    """Load `run` (see load_run) and explain `source` with it (see explain_loaded)."""
    loaded = load_run(run, which, runs_dir=runs_dir)
    try:
        return explain_loaded(loaded, source, beam=beam, output_steps=output_steps)
    finally:
        loaded.close()


def explain_loaded(loaded: LoadedRun, source: Source, *, beam: int = 1,
                   output_steps: int | None = None, connectivity: bool = True,
                   method: str = "fused") -> Explanation:
    """Explain `source` with a loaded model (the module docstring says what is computed).

    beam: beam width for token targets (1: greedy). output_steps: the most output steps
    to generate (None: the training target length, plus the extra input steps for token
    targets when the input is longer than the training inputs). connectivity=False
    leaves it out (None), for a first quick look: `add_connectivity` adds it later.
    method: one of CONNECTIVITY_METHODS (the same matrix; "fused" is the fast one).
    ConfigError or DatasetError, one line, for any input the model cannot read.
    """
    model, twin = loaded.model, loaded.twin
    src_side, tgt_side = loaded.source, loaded.target
    beam = _check_beam(beam, tgt_side.kind)
    raw_input, raw_target, label = _resolve(loaded, source)
    t_in = int(raw_input.shape[0])
    notes = list(loaded.notes) + _length_notes("input", t_in, src_side)
    steps = _output_steps(output_steps, t_in, src_side, tgt_side)
    src = _model_input(raw_input, src_side, loaded.normalization)  # (1, T_in[, F]) float32/ids
    with torch.no_grad():
        generated = model.generate(src, steps, beam=beam)
    if tgt_side.kind == "tokens":
        length = int(generated.lengths[0])
        out_ids = generated.outputs[0, :length].cpu().numpy().astype(np.int64)
        gen_target = torch.as_tensor(out_ids, dtype=torch.int64)[None, :]
        outputs: np.ndarray = out_ids
    else:
        gen_target = generated.outputs.to(torch.float64)  # normalised units, (1, steps, F)
        outputs = _denormalize_y(generated.outputs[0].cpu().numpy().astype(np.float64),
                                 loaded.normalization)
    teacher_forced = None
    if raw_target is not None:
        notes += _length_notes("target", int(raw_target.shape[0]), tgt_side)
        teacher_forced = _teacher_forced(model, src, raw_target, tgt_side, loaded.normalization)
    src64 = _model_input(raw_input, src_side, loaded.normalization, torch.float64)
    chosen = gen_target[0] if tgt_side.kind == "tokens" else None
    matrix = None
    _check_method(method)
    if connectivity and method == "unrolled":
        matrix, trace = traced_connectivity(twin, src64, gen_target, chosen=chosen,
                                            normalization=loaded.normalization)
    else:
        with torch.no_grad():
            trace = twin(src64, gen_target, teacher_forcing=1.0, instrumented=True)
        if connectivity:
            matrix = connectivity_matrix(twin, src64, gen_target, chosen=chosen,
                                         normalization=loaded.normalization)
    encoder, decoder = _side_trace(trace.encoder), _side_trace(trace.decoder)
    attention = None
    if trace.attention is not None:
        attention = trace.attention[0].detach().to(torch.float64).cpu().numpy()
    tokens = tgt_side.kind == "tokens"
    target_vocab = loaded.vocab("target") if tokens and _has_vocab(loaded, "target") else None
    input_vocab = (loaded.vocab("source") if src_side.kind == "tokens"
                   and _has_vocab(loaded, "source") else None)
    return Explanation(
        run_id=loaded.run_id, checkpoint=loaded.checkpoint, step=loaded.step, cell=loaded.cell,
        input_kind=src_side.kind, target_kind=tgt_side.kind, input=raw_input, outputs=outputs,
        encoder=encoder, decoder=decoder, connectivity=matrix, beam=beam,
        teacher_forced=teacher_forced, target=raw_target,
        input_tokens=_symbols(raw_input, input_vocab) if src_side.kind == "tokens" else None,
        output_tokens=_symbols(outputs, target_vocab) if tokens else None,
        teacher_forced_tokens=(_symbols(teacher_forced, target_vocab)
                               if tokens and teacher_forced is not None else None),
        target_tokens=(_symbols(raw_target, target_vocab)
                       if tokens and raw_target is not None else None),
        attention=attention, notes=tuple(notes), source=label,
        joined_input=input_vocab is None or char_mode(input_vocab, src_side.reserved),
        joined_target=target_vocab is None or char_mode(target_vocab, tgt_side.reserved))


def add_connectivity(loaded: LoadedRun, explanation: Explanation, *,
                     method: str = "fused") -> Explanation:
    """`explanation` (of `loaded`'s model) with its connectivity matrix computed
    (`method`: one of CONNECTIVITY_METHODS)."""
    if explanation.connectivity is not None:
        return explanation
    src = _model_input(explanation.input, loaded.source, loaded.normalization, torch.float64)
    if loaded.target.kind == "tokens":
        fed = torch.as_tensor(explanation.outputs, dtype=torch.int64)[None, :]
        chosen = fed[0]
    else:
        values = explanation.outputs
        if loaded.normalization is not None and loaded.normalization.y_mean is not None:
            values = loaded.normalization.normalize_y(values.astype(np.float64))
        fed, chosen = torch.as_tensor(np.asarray(values, dtype=np.float64))[None], None
    matrix = connectivity_matrix(loaded.twin, src, fed, chosen=chosen,
                                 normalization=loaded.normalization, method=method)
    return dataclasses.replace(explanation, connectivity=matrix)


# -- the connectivity matrix ----------------------------------------------------------------


def connectivity_matrix(twin: Any, src: torch.Tensor, tgt: torch.Tensor, *,
                        chosen: torch.Tensor | None = None,
                        normalization: Any | None = None, method: str = "fused") -> np.ndarray:
    """C (T_out, T_in) of the float64 model `twin` (eval mode) on one sample.

    src: (1, T_in) ids or (1, T_in, F_in) normalised values; tgt: what the decoder is fed,
    (1, T_out) ids or (1, T_out, F_out) normalised values, held constant (teacher forcing
    1.0). chosen: (T_out,) the token whose logit is differentiated at each step (token
    targets). Continuous values are differentiated in the data's own units when a
    normalization is given. See the module docstring for the definition.

    method (CONNECTIVITY_METHODS): "fused" differentiates the model's fused forward pass
    (torch's sequence kernels: a small graph); "unrolled", the first version, the
    instrumented pass, one autograd node per operation of every step (traced_connectivity).
    The same backward pass batched over one-hot cotangents either way. LSTM H128,
    T_in = T_out = 50, 1 thread, alone: about 68 against 95 ms; H256, T100: 520 against
    900 (benchmarks/bench_inspect.py gives both under load).

    torch.func.jacrev of the fused pass was faster still (48 ms) but is not used: its
    vmap over the backward pass holds the GIL for up to 400 ms at a time (measured with a
    second thread waiting on it), so the GUI thread froze while the worker computed.
    autograd.grad's is_grads_batched lets go of it (the longest wait: about 25 ms).
    """
    _check_method(method)
    return _batched_connectivity(twin, src, tgt, chosen=chosen, normalization=normalization,
                                 instrumented=method == "unrolled")[0]


def _check_method(method: str) -> None:
    if method not in CONNECTIVITY_METHODS:
        raise ConfigError(f"connectivity method {method!r} is not known: expected one of "
                          f"{', '.join(CONNECTIVITY_METHODS)}")


def traced_connectivity(twin: Any, src: torch.Tensor, tgt: torch.Tensor, *,
                        chosen: torch.Tensor | None = None,
                        normalization: Any | None = None) -> tuple[np.ndarray, Any]:
    """(C, the Seq2SeqTrace of the pass): connectivity_matrix from the instrumented
    forward pass, whose records (every h_t, c_t and gate) the explanation shows
    (the method "unrolled").

    One forward pass, then one backward pass per chunk of output values with a batch of
    one-hot cotangents (autograd's is_grads_batched): row r of the batch is the gradient
    of output value r. About 6x faster than one backward per output value (LSTM H128,
    T_in = T_out = 50: 89 vs 570 ms), and slower than the same over the fused pass.
    """
    return _batched_connectivity(twin, src, tgt, chosen=chosen, normalization=normalization,
                                 instrumented=True)


def _batched_connectivity(twin: Any, src: torch.Tensor, tgt: torch.Tensor, *,
                          chosen: torch.Tensor | None, normalization: Any | None,
                          instrumented: bool) -> tuple[np.ndarray, Any]:
    """(C, the pass's Seq2SeqTrace if `instrumented`, else its outputs)."""
    cfg = twin.config
    tokens_in = cfg.source.kind == "tokens"
    tokens_out = cfg.target.kind == "tokens"
    t_in, t_out = int(src.shape[1]), int(tgt.shape[1])
    k = 1 if tokens_out else int(cfg.target.features)
    rows = t_out * k
    x_std = _std(normalization, "x", None if tokens_in else int(cfg.source.features))
    y_std = _std(normalization, "y", None if tokens_out else k)
    handle = None
    if tokens_in:
        with torch.no_grad():
            embedded = twin.source_embedding(src)
        leaf = embedded.clone().requires_grad_(True)  # (1, T_in, E)
        handle = twin.source_embedding.register_forward_hook(_returning(leaf))
        src_arg = src
    else:
        leaf = (src * x_std).clone().requires_grad_(True)  # (1, T_in, F): the data's scale
        src_arg = leaf / x_std
    try:
        with torch.enable_grad():
            result = twin(src_arg, tgt, teacher_forcing=1.0, instrumented=instrumented)
            out = (result.outputs if instrumented else result)[0]  # (T_out, V or F)
    finally:
        if handle is not None:
            handle.remove()
    if tokens_out:
        if chosen is None:
            raise ValueError("connectivity_matrix: token targets need `chosen`")
        picked = out[torch.arange(t_out), chosen.to(torch.int64)]  # (T_out,)
    else:
        picked = (out * y_std).reshape(-1)  # (T_out * F_out,), row r = (t', f) = (r // k, r % k)
    gates = max(1, _gate_count(cfg.cell))
    if instrumented:  # the first version's own bound, as it was measured
        width = (t_in + t_out) * cfg.hidden * gates * cfg.layers * 4
        chunk = max(1, min(rows, 2**23 // max(1, width)))
    else:  # about two float64 values per gate unit and step for each output value
        width = (t_in + t_out) * cfg.hidden * gates * cfg.layers * 2
        most = max(1, CHUNK_VALUES // max(1, width))
        chunk = -(-rows // -(-rows // most))  # equal chunks of at most `most`
    squares = np.zeros((t_out, t_in), dtype=np.float64)
    for first in range(0, rows, chunk):
        last = min(rows, first + chunk)
        cotangents = torch.zeros(last - first, rows, dtype=torch.float64)
        cotangents[torch.arange(last - first), torch.arange(first, last)] = 1.0
        (grad,) = torch.autograd.grad(picked, leaf, grad_outputs=cotangents,
                                      retain_graph=last < rows, is_grads_batched=True)
        sq = grad[:, 0].detach().pow(2).sum(dim=-1).cpu().numpy()  # (chunk, T_in)
        np.add.at(squares, np.arange(first, last) // k, sq)
    return np.sqrt(squares), result


def _returning(value: torch.Tensor) -> Any:
    """A forward hook that replaces a module's output with `value` (the embedding leaf)."""
    return lambda _module, _inputs, _output: value


def _std(normalization: Any | None, side: str, features: int | None) -> torch.Tensor:
    """The side's std as a float64 tensor (ones when not normalised); 1.0 for tokens."""
    if features is None:
        return torch.ones((), dtype=torch.float64)
    std = None if normalization is None else getattr(normalization, f"{side}_std")
    if std is None:
        return torch.ones(features, dtype=torch.float64)
    return torch.as_tensor(np.asarray(std, dtype=np.float64).reshape(features))


def _gate_count(cell: str) -> int:
    from models.cells import cell_info

    return cell_info(cell).gate_count


# -- reading the input ----------------------------------------------------------------------


def char_mode(vocab: Sequence[str], reserved: Sequence[int] = (0, 1, 2)) -> bool:
    """Typed text is split into characters when every entry past the reserved ones is one
    character (else on whitespace)."""
    symbols = [w for i, w in enumerate(vocab) if i not in set(reserved)]
    return bool(symbols) and all(len(w) == 1 for w in symbols)


def join_tokens(tokens: Sequence[str], joined: bool | None = None) -> str:
    """Symbols as text: joined without spaces in character mode (`joined`; None: when every
    symbol is one character), else separated by spaces. The inverse of `tokenize`."""
    if joined is None:
        joined = all(len(t) == 1 for t in tokens)
    return ("" if joined else " ").join(tokens)


def tokenize(text: str, vocab: Sequence[str], reserved: Sequence[int] = (0, 1, 2), *,
             what: str = "input") -> np.ndarray:
    """Typed text -> ids (int64) in `vocab` (the reserved ids are never typed).

    Characters when every vocabulary entry past the reserved ones is one character
    (whitespace is skipped unless it is a symbol), else whitespace-separated words.
    ConfigError for empty text, and for symbols outside the vocabulary, naming each and
    its 1-based positions.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"the {what} is empty: type some symbols of the vocabulary")
    skip = set(reserved)
    lookup = {w: i for i, w in enumerate(vocab) if i not in skip}
    if char_mode(vocab, reserved):
        pieces = [(pos + 1, ch) for pos, ch in enumerate(text)
                  if ch in lookup or not ch.isspace()]
        unit = "character"
    else:
        pieces = [(pos + 1, word) for pos, word in enumerate(text.split())]
        unit = "word"
    unknown: dict[str, list[int]] = {}
    for pos, symbol in pieces:
        if symbol not in lookup:
            unknown.setdefault(symbol, []).append(pos)
    if unknown:
        parts = [f"{s!r} at {unit} {', '.join(map(str, p[:5]))}{'…' if len(p) > 5 else ''}"
                 for s, p in list(unknown.items())[:6]]
        more = f" and {len(unknown) - 6} more" if len(unknown) > 6 else ""
        known = [w for i, w in enumerate(vocab) if i not in skip]
        listed = " ".join(known[:40]) + (" …" if len(known) > 40 else "")
        raise ConfigError(f"the {what} has symbols outside the run's vocabulary: "
                          f"{'; '.join(parts)}{more} (known: {listed})")
    ids = np.array([lookup[s] for _pos, s in pieces], dtype=np.int64)
    if ids.size > MAX_INPUT_STEPS:
        raise ConfigError(f"the {what} has {ids.size} symbols; at most {MAX_INPUT_STEPS} "
                          "are allowed")
    return ids


def parse_values(values: str | np.ndarray, features: int, *, what: str = "input") -> np.ndarray:
    """Continuous values -> float64 (T, features).

    Text: steps separated by ';' (or new lines), features by ','; with one feature and
    no ';', commas separate steps ("0.1,0.5,0.3"). An array: (T,) for one feature or
    (T, features). ConfigError for empty input, a step with the wrong number of values,
    text that is not a number, and NaN or infinite values (naming the step and feature).
    """
    if isinstance(values, str):
        array = _values_from_text(values, features, what)
    else:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1 and features == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] != features:
            raise ConfigError(f"the {what} has shape {tuple(array.shape)}; the model reads "
                              f"(steps, {features}) values")
    if array.shape[0] == 0:
        raise ConfigError(f"the {what} is empty: give at least one step")
    if array.shape[0] > MAX_INPUT_STEPS:
        raise ConfigError(f"the {what} has {array.shape[0]} steps; at most {MAX_INPUT_STEPS} "
                          "are allowed")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        step, feature = (int(v) for v in bad[0])
        raise ConfigError(f"the {what}'s step {step + 1}, feature {feature + 1} is "
                          f"{array[step, feature]}: every value must be a finite number")
    return array


def _values_from_text(text: str, features: int, what: str) -> np.ndarray:
    text = text.replace("\n", ";").strip()
    if not text.strip(" ;,"):
        raise ConfigError(f"the {what} is empty: give values like 0.1,2;0.3,1 (steps by ';', "
                          "features by ',')")
    if features == 1 and ";" not in text:
        steps = [s for s in text.split(",")]
        rows = [[s] for s in steps]
        if steps and not steps[-1].strip():  # a trailing comma
            rows = rows[:-1]
    else:
        steps = text.split(";")
        if steps and not steps[-1].strip():  # a trailing ';'
            steps = steps[:-1]
        rows = [s.split(",") for s in steps]
    out = np.empty((len(rows), features), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != features:
            raise ConfigError(f"the {what}'s step {i + 1} has {len(row)} value"
                              f"{'s' if len(row) != 1 else ''}; the model reads {features} "
                              f"feature{'s' if features != 1 else ''} per step")
        for j, cell in enumerate(row):
            try:
                out[i, j] = float(cell.strip())
            except ValueError:
                raise ConfigError(f"the {what}'s step {i + 1}, feature {j + 1}: "
                                  f"{cell.strip()!r} is not a number") from None
    return out


def formula_values(formula: str, steps: int, features: int) -> np.ndarray:
    """(steps, features) from one formula per feature, separated by ';'."""
    parts = [p for p in formula.split(";")]
    if len(parts) > 1 and not parts[-1].strip():
        parts = parts[:-1]
    if len(parts) != features:
        raise ConfigError(f"the model reads {features} features per step: give one formula "
                          f"per feature, separated by ';' (got {len(parts)})")
    return np.stack([evaluate_formula(p, steps) for p in parts], axis=1)


def _resolve(loaded: LoadedRun, source: Source) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(input (T,) ids or (T, F) values in data units, target or None, a label)."""
    src = loaded.source
    if isinstance(source, SampleInput):
        return _sample(loaded, source)
    if isinstance(source, TextInput):
        if src.kind != "tokens":
            raise ConfigError(f"run {loaded.run_id or '(model)'} reads continuous values, not "
                              "text: give values or a formula")
        ids = tokenize(source.text, loaded.vocab("source"), src.reserved)
        target = None
        if source.target is not None and source.target.strip():
            target = _typed_target(loaded, source.target)
        return ids, target, "typed text"
    if isinstance(source, (ValuesInput, FormulaInput)):
        if src.kind != "continuous":
            raise ConfigError(f"run {loaded.run_id or '(model)'} reads tokens: type text in its "
                              "vocabulary instead of values")
        features = int(src.features or 1)
        if isinstance(source, FormulaInput):
            steps = source.steps if source.steps is not None else (src.steps or 20)
            if isinstance(steps, bool) or not isinstance(steps, int) or not (
                    1 <= steps <= MAX_INPUT_STEPS):
                raise ConfigError(f"the formula's steps must be an integer in "
                                  f"1..{MAX_INPUT_STEPS}, got {steps!r}")
            return formula_values(source.formula, steps, features), None, "formula"
        values = parse_values(source.values, features)
        target = None
        if source.target is not None and not (isinstance(source.target, str)
                                              and not source.target.strip()):
            target = _typed_target(loaded, source.target)
        return values, target, "typed values"
    raise ConfigError(f"unknown kind of input: {type(source).__name__}")


def _typed_target(loaded: LoadedRun, target: str | np.ndarray) -> np.ndarray:
    tgt = loaded.target
    if tgt.kind == "tokens":
        if not isinstance(target, str):
            raise ConfigError("a token target is typed as text")
        ids = tokenize(target, loaded.vocab("target"), tgt.reserved, what="target")
        end = tgt.reserved[2]
        return np.append(ids, end).astype(np.int64)
    return parse_values(target, int(tgt.features or 1), what="target")


def _sample(loaded: LoadedRun, source: SampleInput) -> tuple[np.ndarray, np.ndarray, str]:
    dataset = loaded.open_dataset()
    split = dataset.split(source.split)
    index = source.index
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not (
            0 <= index < len(split)):
        raise DatasetError(f"{dataset.summary.path}: sample {index} is not in the "
                           f"{source.split} split (it has {len(split)} sequences: 0.."
                           f"{len(split) - 1})")
    batch = split.read(np.array([int(index)], dtype=np.int64))
    x_len, y_len = int(batch.x_lengths[0]), int(batch.y_lengths[0])
    x, y = batch.x[0, :x_len], batch.y[0, :y_len]
    x = x.astype(np.int64) if loaded.source.kind == "tokens" else x.astype(np.float64)
    y = y.astype(np.int64) if loaded.target.kind == "tokens" else y.astype(np.float64)
    return x, y, f"{source.split} sample {int(index)}"


def _has_vocab(loaded: LoadedRun, side: str) -> bool:
    """Whether the side's vocabulary can be had (a model from memory may have none)."""
    info = loaded.source if side == "source" else loaded.target
    return info.vocab is not None or loaded.run is not None


# -- the pieces of explain_loaded -------------------------------------------------------------


def _check_beam(beam: Any, target_kind: str) -> int:
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or not (
            1 <= beam <= MAX_BEAM):
        raise ConfigError(f"beam = {beam!r} is not allowed: expected an integer in 1..{MAX_BEAM}")
    if beam > 1 and target_kind != "tokens":
        raise ConfigError(f"beam = {beam}: beam search needs token targets; this run's targets "
                          "are continuous (use beam 1)")
    return int(beam)


def _output_steps(requested: int | None, t_in: int, src: SideInfo, tgt: SideInfo) -> int:
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) or not (
                1 <= requested <= MAX_OUTPUT_STEPS):
            raise ConfigError(f"output steps = {requested!r} is not allowed: expected an "
                              f"integer in 1..{MAX_OUTPUT_STEPS}")
        return int(requested)
    base = tgt.steps or t_in
    if tgt.kind == "tokens" and src.steps:
        base += max(0, t_in - src.steps)
    return int(min(MAX_OUTPUT_STEPS, max(1, base)))


def _length_notes(what: str, steps: int, side: SideInfo) -> list[str]:
    if not side.steps:
        return []
    if side.variable_length:
        if steps > side.steps:
            return [f"the {what} has {steps} steps, longer than any in training (at most "
                    f"{side.steps})"]
        return []
    if steps != side.steps:
        longer = "longer" if steps > side.steps else "shorter"
        return [f"the {what} has {steps} steps, {longer} than in training ({side.steps})"]
    return []


def _model_input(raw: np.ndarray, side: SideInfo, normalization: Any | None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(1, T) ids or (1, T, F) normalised values in `dtype` (normalised in float64)."""
    if side.kind == "tokens":
        return torch.as_tensor(raw, dtype=torch.int64)[None, :]
    values = raw.astype(np.float64)
    if normalization is not None and normalization.x_mean is not None:
        values = normalization.normalize_x(values)
    return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(dtype)[None, :, :]


def _denormalize_y(values: np.ndarray, normalization: Any | None) -> np.ndarray:
    if normalization is None or normalization.y_mean is None:
        return values
    return np.asarray(normalization.denormalize_y(values), dtype=np.float64)


def _teacher_forced(model: Any, src: torch.Tensor, target: np.ndarray, side: SideInfo,
                    normalization: Any | None) -> np.ndarray:
    """The model's output at every target step, each step fed the true previous target."""
    if side.kind == "tokens":
        vocab = int(model.config.target.vocab_size)
        if int(target.max()) >= vocab:
            raise DatasetError(f"the target holds id {int(target.max())}, outside the model's "
                               f"vocabulary of {vocab}")
        tgt = torch.as_tensor(target, dtype=torch.int64)[None, :]
    else:
        values = target
        if normalization is not None and normalization.y_mean is not None:
            values = normalization.normalize_y(values.astype(np.float64))
        tgt = torch.as_tensor(np.asarray(values, dtype=np.float32))[None, :, :]
    with torch.no_grad():
        out = model(src, tgt, teacher_forcing=1.0)[0]
    if side.kind == "tokens":
        return out.argmax(dim=-1).cpu().numpy().astype(np.int64)
    return _denormalize_y(out.cpu().numpy().astype(np.float64), normalization)


def _side_trace(trace: Any) -> SideTrace:
    """A models.recurrent.RecurrentTrace of one sample as float64 numpy arrays."""
    def stack(steps: list[list[torch.Tensor]]) -> np.ndarray:
        return np.stack([torch.stack([h[0] for h in layer]).detach().to(torch.float64)
                         .cpu().numpy() for layer in steps])

    hidden = stack(trace.h)
    cell = stack(trace.c) if trace.c is not None else None
    gates: dict[str, np.ndarray] = {}
    for layer in trace.gates:
        for name, value in layer.items():
            gates.setdefault(name, []).append(  # type: ignore[arg-type]
                value[0].detach().to(torch.float64).cpu().numpy())
    return SideTrace(hidden, cell, {n: np.stack(v) for n, v in gates.items()})  # type: ignore[arg-type]


def _symbols(ids: np.ndarray, vocab: Sequence[str] | None) -> tuple[str, ...]:
    if vocab is None:
        return tuple(str(int(i)) for i in ids)
    return tuple(vocab[int(i)] if 0 <= int(i) < len(vocab) else f"<{int(i)}>" for i in ids)


def _side_info(side: Any, steps: Any, variable: bool, vocab: Sequence[str] | None) -> SideInfo:
    return SideInfo(
        kind=side.kind,
        steps=int(steps) if isinstance(steps, (int, float)) and not isinstance(steps, bool)
        and math.isfinite(steps) and steps > 0 else None,
        variable_length=variable,
        features=side.features if side.kind == "continuous" else None,
        vocab=tuple(vocab) if vocab is not None else None,
        reserved=(side.pad_id, side.start_id, side.end_id) if side.kind == "tokens" else (),
    )


def _float64_twin(model: Any) -> Any:
    twin = copy.deepcopy(model).to(torch.float64).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def _file_version(path: Path) -> tuple[Any, ...]:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), None, None)
    return (str(path), stat.st_mtime_ns, stat.st_size)
