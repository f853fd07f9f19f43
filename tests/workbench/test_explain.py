"""The inspector's core (workbench.explain) and its CLI: what a trained model does on the
user's own input, checked against independent computations.

- hidden states, cell states and gates equal the unrolled path's (models.recurrent);
- the connectivity matrix equals torch.autograd.functional.jacobian of the model's own
  forward pass, in float64, for tokens (through the embedding) and continuous values
  (in the data's units);
- an untrained rnn-tanh at recurrent radius 0.5 forgets: connectivity decays with the
  distance from the end of the input in every output row;
- typed input: text round-trips through the vocabulary, an unknown symbol is named,
  bad values are refused with one line;
- a sample's generated output is the Predictions panel's; `explain --json` has the keys.

The runs are tiny and trained through workbench.run_service (tests/workbench/train_helpers).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from tests.workbench.train_helpers import VOCAB, record_run, tiny_config, write_reverse, write_waves
from workbench.cli import main
from workbench.errors import ConfigError
from workbench.explain import (
    FormulaInput,
    LoadedRun,
    SampleInput,
    TextInput,
    ValuesInput,
    explain,
    explain_loaded,
    join_tokens,
    load_run,
    parse_values,
    tokenize,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"lstm": token run (reverse task), "gru": continuous run (waves)} in one runs dir."""
    root = tmp_path_factory.mktemp("explain")
    runs_dir = root / "runs"
    tokens = write_reverse(root / "reverse.h5", n=64, length=5)
    waves = write_waves(root / "waves.h5", n=64, t_in=10, t_out=4)
    made = {
        "lstm": record_run(tiny_config(tokens, cell="lstm", steps=8), runs_dir).name,
        "gru": record_run(tiny_config(waves, cell="gru", steps=8, hidden=6), runs_dir).name,
    }
    return runs_dir, made


def _loaded(runs, cell):
    runs_dir, made = runs
    return load_run(made[cell], runs_dir=runs_dir)


# -- truth: the hidden states and gates --------------------------------------------------


def _unrolled(model, src_in, gen_in_steps, state_of_encoder=True):
    """(encoder trace, decoder trace) of the model's own unrolled path, float32."""
    with torch.no_grad():
        enc = model.encoder.unroll(src_in)
        dec = model.decoder.unroll(gen_in_steps, enc.state)
    return enc, dec


def _compare(side, trace):
    hidden = np.stack([torch.stack([h[0] for h in layer]).numpy() for layer in trace.h])
    np.testing.assert_allclose(side.hidden, hidden, atol=1e-6)
    if trace.c is not None:
        cell = np.stack([torch.stack([c[0] for c in layer]).numpy() for layer in trace.c])
        np.testing.assert_allclose(side.cell, cell, atol=1e-6)
    else:
        assert side.cell is None
    assert set(side.gates) == set(trace.gates[0])
    for name, values in side.gates.items():
        np.testing.assert_allclose(values, np.stack([g[name][0].numpy() for g in trace.gates]),
                                   atol=1e-6)


def test_hidden_states_cells_and_gates_equal_the_unrolled_path_for_tokens(runs):
    loaded = _loaded(runs, "lstm")
    result = explain_loaded(loaded, TextInput("abcde"))
    model = loaded.model
    ids = torch.as_tensor(result.input)[None]
    generated = torch.as_tensor(result.outputs)[None]
    teacher_in = torch.cat([model._start_input(1)[:, None],
                            model.target_embedding(generated[:, :-1])], dim=1)
    enc, dec = _unrolled(model, model.source_embedding(ids), teacher_in)
    assert result.encoder.hidden.shape == (1, 5, 8) and result.encoder.cell is not None
    assert set(result.encoder.gates) == {"i", "f", "g", "o"}
    _compare(result.encoder, enc)
    _compare(result.decoder, dec)
    assert result.decoder.steps == len(result.outputs)


def test_hidden_states_and_gates_equal_the_unrolled_path_for_continuous_values(runs):
    loaded = _loaded(runs, "gru")
    values = np.linspace(7.0, 13.0, 12)[:, None]  # the data's own units, longer than training
    result = explain_loaded(loaded, ValuesInput(values))
    model, norm = loaded.model, loaded.normalization
    src = torch.as_tensor(norm.normalize_x(values).astype(np.float32))[None]
    gen = torch.as_tensor(norm.normalize_y(result.outputs).astype(np.float32))[None]
    teacher_in = torch.cat([model._start_input(1)[:, None], gen[:, :-1]], dim=1)
    enc, dec = _unrolled(model, src, teacher_in)
    assert set(result.encoder.gates) == {"r", "z", "n"}
    _compare(result.encoder, enc)
    _compare(result.decoder, dec)
    # the outputs are the model's own generation, in the data's units
    with torch.no_grad():
        expected = norm.denormalize_y(model.generate(src, 4).outputs[0].numpy())
    np.testing.assert_allclose(result.outputs, expected, rtol=1e-6)
    assert any("12 steps, longer than in training (10)" in n for n in result.notes)


# -- truth: the connectivity matrix --------------------------------------------------------


def test_token_connectivity_equals_an_independent_jacobian_through_the_embedding(runs):
    loaded = _loaded(runs, "lstm")
    result = explain_loaded(loaded, TextInput("badcaeb"))
    model = copy.deepcopy(loaded.model).double()
    ids = torch.as_tensor(result.input)[None]
    generated = torch.as_tensor(result.outputs)[None]
    steps = torch.arange(generated.shape[1])
    with torch.no_grad():
        embedded = model.source_embedding(ids)[0]

    def chosen_logits(e):
        handle = model.source_embedding.register_forward_hook(lambda *_: e[None])
        try:
            logits = model(ids, generated, teacher_forcing=1.0)[0]
        finally:
            handle.remove()
        return logits[steps, generated[0]]

    jac = torch.autograd.functional.jacobian(chosen_logits, embedded)  # (T_out, T_in, E)
    expected = jac.pow(2).sum(-1).sqrt().numpy()
    assert result.connectivity.shape == (len(result.outputs), 7)
    np.testing.assert_allclose(result.connectivity, expected, rtol=1e-6, atol=1e-14)
    assert result.connectivity.max() > 0


def test_continuous_connectivity_equals_an_independent_jacobian_in_data_units(runs):
    loaded = _loaded(runs, "gru")
    rng = np.random.default_rng(3)
    values = 10 + 3 * rng.standard_normal((9, 1))
    result = explain_loaded(loaded, ValuesInput(values))
    model, norm = copy.deepcopy(loaded.model).double(), loaded.normalization
    x_mean, x_std = (torch.as_tensor(v, dtype=torch.float64) for v in (norm.x_mean, norm.x_std))
    y_mean, y_std = (torch.as_tensor(v, dtype=torch.float64) for v in (norm.y_mean, norm.y_std))
    fed = torch.as_tensor(norm.normalize_y(result.outputs), dtype=torch.float64)[None]

    def outputs_in_units(x):  # x (T_in, 1) in the data's units
        y = model(((x - x_mean) / x_std)[None], fed, teacher_forcing=1.0)[0]
        return y * y_std + y_mean

    jac = torch.autograd.functional.jacobian(
        outputs_in_units, torch.as_tensor(values, dtype=torch.float64))  # (T_out, F, T_in, F)
    expected = jac.pow(2).sum(dim=(1, 3)).sqrt().numpy()
    np.testing.assert_allclose(result.connectivity, expected, rtol=1e-6, atol=1e-14)


def test_an_untrained_tanh_rnn_at_radius_half_forgets_in_every_output_row():
    from models.init import initialize_seq2seq
    from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig

    torch.manual_seed(0)
    side = SideConfig("tokens", vocab_size=len(VOCAB), embedding=8)
    model = Seq2Seq(Seq2SeqConfig(cell="rnn-tanh", hidden=32, source=side, target=side))
    initialize_seq2seq(model, radius=0.5)
    loaded = LoadedRun.from_model(model, input_vocab=VOCAB, target_vocab=VOCAB)
    t_in = 20
    result = explain_loaded(loaded, TextInput("abcde" * 4), output_steps=6)
    c = result.connectivity
    assert c.shape == (len(result.outputs), t_in) and np.all(c > 0)
    distance = t_in - 1 - np.arange(t_in)  # T_in - t, from 0 at the last input step
    for row in np.log(c):
        slope = np.polyfit(distance, row, 1)[0]
        assert np.exp(slope) < 0.75  # each step back keeps well under 3/4 of the dependence
        assert row[0] < row[-1] - np.log(1e4)  # the first step: under 1e-4 of the last's
        # every step is below the steps after it, taken a few at a time
        assert all(row[t] < row[t + 1:t + 5].max() for t in range(t_in - 1))


# -- the input -----------------------------------------------------------------------------


def test_typed_tokens_round_trip_through_the_vocabulary(runs):
    loaded = _loaded(runs, "lstm")
    result = explain_loaded(loaded, TextInput("ecab d", target="d bace"))
    assert [VOCAB[i] for i in result.input] == list("ecabd")  # a space is not a symbol here
    assert result.text("input") == "ecabd"
    assert result.text("target") == "dbace</s>" and result.target[-1] == 2
    assert len(result.teacher_forced) == len(result.target)
    assert list(tokenize(result.text("input"), VOCAB)) == list(result.input)
    words = ("<pad>", "<s>", "</s>", "12", "+", "7")
    ids = tokenize("12 + 7 12", words)
    assert list(ids) == [3, 4, 5, 3] and join_tokens([words[i] for i in ids], False) == "12 + 7 12"


def test_an_unknown_symbol_is_refused_naming_it_and_where(runs):
    loaded = _loaded(runs, "lstm")
    with pytest.raises(ConfigError) as caught:
        explain_loaded(loaded, TextInput("abzcz"))
    message = str(caught.value)
    assert "'z' at character 3, 5" in message and "known: a b c d e" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="'plus' at word 2"):
        tokenize("12 plus 7", ("<pad>", "<s>", "</s>", "12", "+", "7"))


@pytest.mark.parametrize("text, match", [
    ("", "empty"), (" ; ", "empty"), ("1,2;3", "step 1 has 2 values; the model reads 1"),
    ("1;nan;2", "step 2, feature 1 is nan"), ("1;inf", "step 2, feature 1 is inf"),
    ("1;x", "'x' is not a number"),
])
def test_bad_values_are_refused_with_one_line(text, match):
    with pytest.raises(ConfigError, match=match) as caught:
        parse_values(text, 1)
    assert "\n" not in str(caught.value)


def test_values_read_steps_by_semicolon_and_features_by_comma():
    np.testing.assert_array_equal(parse_values("0.1,2;0.3,1", 2), [[0.1, 2], [0.3, 1]])
    np.testing.assert_array_equal(parse_values("0.1,0.5,0.3", 1), [[0.1], [0.5], [0.3]])
    np.testing.assert_array_equal(parse_values("1\n2\n", 1), [[1], [2]])


def test_the_wrong_kind_of_input_and_a_formula_for_two_features_are_refused(runs):
    with pytest.raises(ConfigError, match="reads tokens"):
        explain_loaded(_loaded(runs, "lstm"), ValuesInput("1;2"))
    gru = _loaded(runs, "gru")
    with pytest.raises(ConfigError, match="reads continuous values, not text"):
        explain_loaded(gru, TextInput("abc"))
    with pytest.raises(ConfigError, match="may not contain"):
        explain_loaded(gru, FormulaInput("__import__('os').getcwd()"))
    with pytest.raises(ConfigError, match="beam search needs token targets"):
        explain_loaded(gru, FormulaInput("sin(t)"), beam=2)


def test_a_formula_input_has_the_steps_asked_for(runs):
    result = explain_loaded(_loaded(runs, "gru"), FormulaInput("10 + 3*sin(t/3)", steps=25))
    np.testing.assert_allclose(result.input[:, 0], 10 + 3 * np.sin(np.arange(25) / 3))
    assert result.connectivity.shape == (4, 25)
    assert any("25 steps, longer than in training (10)" in n for n in result.notes)


def test_a_sample_shows_what_the_predictions_panel_shows(runs):
    from workbench.predictions import predict_from_run

    runs_dir, made = runs
    result = explain(made["lstm"], SampleInput(2, "val"), runs_dir=runs_dir)
    prediction = predict_from_run(made["lstm"], None, 2, "val", runs_dir=runs_dir)
    np.testing.assert_array_equal(result.outputs, prediction.free_running)
    np.testing.assert_array_equal(result.teacher_forced, prediction.teacher_forced)
    np.testing.assert_array_equal(result.target, prediction.target)
    assert result.source == "val sample 2" and result.checkpoint == "best"


def test_beam_search_gives_the_models_beam_output(runs):
    loaded = _loaded(runs, "lstm")
    result = explain_loaded(loaded, TextInput("abcde"), beam=3)
    with torch.no_grad():
        gen = loaded.model.generate(torch.as_tensor(result.input)[None], 6, beam=3)
    np.testing.assert_array_equal(result.outputs, gen.outputs[0, : int(gen.lengths[0])].numpy())
    assert result.connectivity.shape[0] == len(result.outputs)


# -- the CLI -------------------------------------------------------------------------------


def test_cli_json_is_one_line_with_the_keys_and_shapes(runs, capsys):
    runs_dir, made = runs
    assert main(["explain", made["lstm"], "--runs-dir", str(runs_dir), "--input", "abcde",
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data = json.loads(out)
    assert {"input", "outputs", "hidden", "cell", "gates", "connectivity"} <= set(data)
    t_out = data["outputs"]["generated"]["steps"]
    assert data["input"]["text"] == "abcde" and data["input"]["ids"] == [3, 4, 5, 6, 7]
    assert np.shape(data["hidden"]["encoder"]) == (5, 8)
    assert np.shape(data["hidden"]["decoder"]) == (t_out, 8)
    assert np.shape(data["cell"]["encoder"]) == (5, 8)
    assert np.shape(data["gates"]["f"]["decoder"]) == (t_out, 8)
    assert np.shape(data["connectivity"]) == (t_out, 5)
    assert main(["explain", made["gru"], "--runs-dir", str(runs_dir), "--formula",
                 "10+sin(t)", "--steps", "7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "cell" not in data and set(data["gates"]) == {"r", "z", "n"}
    assert np.shape(data["connectivity"]) == (4, 7) and np.shape(data["input"]["values"]) == (7, 1)


@pytest.mark.parametrize("flags, match", [
    (["--input", "abq"], "'q' at character 3"),
    (["--input", "   "], "the input is empty"),
    (["--values", "1,2"], "reads tokens"),
    (["--sample", "999"], "sample 999 is not in the val split"),
    (["--input", "abc", "--beam", "0"], "beam = 0"),
])
def test_cli_bad_input_exits_2_with_one_line(runs, capsys, flags, match):
    runs_dir, made = runs
    assert main(["explain", made["lstm"], "--runs-dir", str(runs_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_bad_values_and_formulas_exit_2(runs, capsys):
    runs_dir, made = runs
    for flags, match in ((["--values", "1;nan"], "is nan"), (["--values", "1,2;3,4"], "has 2"),
                         (["--formula", "t.real"], "attribute access"),
                         (["--formula", "(lambda: 1)()"], "may not contain")):
        assert main(["explain", made["gru"], "--runs-dir", str(runs_dir), *flags]) == 2
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1


def test_the_connectivity_added_later_equals_the_one_computed_at_once(runs):
    from workbench.explain import add_connectivity

    loaded = _loaded(runs, "gru")
    quick = explain_loaded(loaded, FormulaInput("10 + t/4", steps=8), connectivity=False)
    assert quick.connectivity is None
    whole = explain_loaded(loaded, FormulaInput("10 + t/4", steps=8))
    np.testing.assert_allclose(add_connectivity(loaded, quick).connectivity, whole.connectivity,
                               rtol=1e-9)
    np.testing.assert_allclose(quick.encoder.hidden, whole.encoder.hidden, atol=1e-12)


@pytest.mark.parametrize("cell, attention, kind", [
    ("lstm", "bahdanau", "tokens"), ("gru", "luong-general", "tokens"),
    ("rnn-tanh", "none", "continuous"), ("lstm", "none", "continuous")])
def test_the_fast_connectivity_equals_the_first_versions_in_chunks_too(monkeypatch, cell,
                                                                       attention, kind):
    """The batched backward over the fused pass (the default) and over the unrolled pass
    (the first version) give one matrix, with attention too, whole or in chunks."""
    import workbench.explain as explain_module
    from models.seq2seq import Seq2Seq, Seq2SeqConfig, SideConfig

    torch.manual_seed(1)
    side = (SideConfig("tokens", vocab_size=len(VOCAB), embedding=6) if kind == "tokens"
            else SideConfig("continuous", features=2))
    model = Seq2Seq(Seq2SeqConfig(cell=cell, hidden=10, source=side, target=side,
                                  attention=attention))
    loaded = LoadedRun.from_model(model, input_vocab=VOCAB, target_vocab=VOCAB)
    source = (TextInput("abcdeab") if kind == "tokens"
              else ValuesInput(np.random.default_rng(0).standard_normal((7, 2))))
    old = explain_loaded(loaded, source, output_steps=6, method="unrolled")
    new = explain_loaded(loaded, source, output_steps=6)
    assert new.connectivity.shape == (len(new.outputs), 7) and new.connectivity.max() > 0
    np.testing.assert_allclose(new.connectivity, old.connectivity, rtol=1e-9, atol=1e-15)
    monkeypatch.setattr(explain_module, "CHUNK_VALUES", 1)  # one output value per chunk
    chunked = explain_loaded(loaded, source, output_steps=6)
    np.testing.assert_allclose(chunked.connectivity, new.connectivity, rtol=1e-12, atol=1e-17)
    with pytest.raises(ConfigError, match="fused, unrolled"):
        explain_loaded(loaded, source, method="rows")
