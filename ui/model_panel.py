"""The Model and training panel: every setting of a run, checked at its field.

Integer settings are spin boxes whose ranges come from workbench.config.FIELDS, so
a value out of range cannot be typed; the learning rate (a free-form number such
as 3e-4) is a line edit checked with `validate_field` as the user types, and an
invalid text is marked at the field with the reason. Train is offered only while
every field holds a valid value.

The panel shows the current dataset (a `DatasetDocument`): the embedding size is
offered only for token data, and the parameter count follows both the settings
and the data.

The recurrent weights' start (init, spectral radius, an LSTM's forget-gate bias) comes
with its consequence: the initial spectral radius rho the settings give (the model the
run would build, seeded: what its first probe records) and rho^(T_in - 1) over the
open dataset's input steps, roughly how much of the gradient at the last input step
reaches the first. They are computed off the GUI thread (ui.jobs, newest request only),
and not while a run trains in this process (building the model draws from torch's
global generator); settings that fix the radius without drawing show it at once.
"""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QTextBrowser,
    QWidget,
)

from ui.jobs import JobSession, Latest
from ui.widgets import fit_width_to_content, scrolling_body
from workbench.config import (
    FIELDS,
    OPTIMIZERS,
    RECURRENT_INITS,
    RunConfig,
    check_forget_bias,
    validate_field,
)
from workbench.errors import ConfigError

INT32_MAX = 2**31 - 1
DESCRIPTION_LINES = 4  # the cell's description box: this many lines, then it scrolls
FIELD_WORDS = {"hidden": "hidden size", "layers": "layers", "embedding": "embedding size",
               "batch_size": "batch size", "epochs": "epochs"}

CELL_LABELS = {
    "rnn-tanh": "RNN (tanh)",
    "rnn-relu": "RNN (ReLU)",
    "rnn-sigmoid": "RNN (sigmoid)",
    "lstm": "LSTM",
    "gru": "GRU",
}

# The settings this panel edits (RunConfig field names), with their defaults.
PANEL_FIELDS = ("cell", "hidden", "layers", "dropout", "embedding", "optimizer", "lr",
                "momentum", "batch_size", "epochs", "teacher_forcing", "teacher_forcing_end",
                "clip", "seed", "probe_every", "device", "attention", "recurrent_init",
                "recurrent_radius", "forget_bias")

# workbench.config.ATTENTION_KINDS: (label, one line on what it does)
ATTENTION_CHOICES = {
    "none": ("None", "The decoder sees the input only through the encoder's final state."),
    "bahdanau": ("Bahdanau (additive)", "Scores v·tanh(W s + U h) from the previous decoder "
                 "state; the context is fed into the decoder's input."),
    "luong-dot": ("Luong (dot)", "Scores the decoder's output against each encoder step, "
                  "h_tᵀh_i; no extra weights but the combination layer."),
    "luong-general": ("Luong (general)", "Scores h_tᵀ W h_i, then tanh(W_c [c; h]) before "
                      "the output layer."),
}
INIT_LABELS = {"default": "torch's default (uniform ±1/√H)", "orthogonal": "orthogonal",
               "identity": "identity (IRNN)"}
PREVIEW_DELAY_MS = 200  # settings typed in a burst make one preview
TRAINING_THREADS = ("training", "comparison", "sweep")  # ui.jobs thread names that train


def training_in_process() -> bool:
    """Whether a job of this process trains now (ui.jobs names its threads by job)."""
    return any(t.name in TRAINING_THREADS and t.is_alive() for t in threading.enumerate())


def describe_preview(radius: float | None, steps: int | None) -> tuple[str, str]:
    """(the radius read-out, the ρ^(T_in−1) read-out) the panel shows."""
    if radius is None or not math.isfinite(radius):
        return "–", "–"
    first = f"{radius:.4g}"
    if steps is None:
        return first, "open a dataset to see ρ^(T_in−1)"
    exponent = max(steps - 1, 0)
    try:
        gain = radius ** exponent
    except OverflowError:
        gain = math.inf
    verdict = ("vanishes" if gain < 1e-3 else "explodes" if gain > 1e3 else "carries")
    return first, f"{radius:.3g}^{exponent} = {gain:.2e}: the gradient {verdict} over T_in = {steps}"


def cell_names() -> tuple[str, ...]:
    """The registry's cells, in its order."""
    try:
        from models.cells import CELLS

        return tuple(CELLS)
    except ImportError:  # pragma: no cover
        return tuple(CELL_LABELS)


def cell_description(name: str) -> str:
    try:
        from models.cells import CELLS

        return CELLS[name].description
    except (ImportError, KeyError):  # pragma: no cover
        return ""


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - a broken CUDA install must not stop the app
        return False


def count_parameters(values: dict[str, Any], summary: Any) -> int | None:
    """Parameters of the model `values` would build on data `summary` (None if unknown)."""
    if summary is None:
        return None
    try:
        from models.seq2seq import parameter_count  # attention's weights included
    except ImportError:  # pragma: no cover
        return None

    def side(spec: Any) -> SimpleNamespace:
        return SimpleNamespace(kind=spec.kind, features=spec.features,
                               vocab_size=getattr(spec, "vocab_size", None),
                               embedding=int(values["embedding"]))

    config = SimpleNamespace(cell=values["cell"], hidden=int(values["hidden"]),
                             layers=int(values["layers"]), source=side(summary.inputs),
                             target=side(summary.targets),
                             attention=values.get("attention", "none"))
    try:
        return int(parameter_count(config))
    except Exception:
        return None


def default_values() -> dict[str, Any]:
    """The panel's settings as RunConfig's defaults."""
    base = RunConfig()
    return {name: getattr(base, name) for name in PANEL_FIELDS}


class DescriptionBox(QTextBrowser):
    """The cell's description: a fixed height (it scrolls when longer), so the fields
    below stay where they are when the cell changes; `text()` as a QLabel's."""

    def text(self) -> str:
        return self.toPlainText()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self.setPlainText(text)
        self.setToolTip(text)


class FieldValidator(QValidator):
    """Accepts what workbench.config.validate_field accepts for one setting."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name

    def validate(self, text: str, pos: int):  # noqa: D401 - Qt's signature
        try:
            validate_field(self.name, text)
        except ConfigError:
            return QValidator.State.Intermediate, text, pos
        return QValidator.State.Acceptable, text, pos


class ModelPanel(QWidget):
    """Settings of the model and its training, for the dataset of `document`."""

    changed = Signal()  # any setting changed (values() differs)
    validity_changed = Signal(bool)  # True when every field holds a valid value

    def __init__(self, document: Any, values: dict[str, Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._errors: dict[str, str] = {}
        self._valid = True
        self._building = True
        self._build()
        self.set_values(values or {})
        self._building = False
        document.changed.connect(self._on_dataset_changed)
        self._on_dataset_changed()

    # --- construction ---------------------------------------------------------------
    def _build(self) -> None:
        scroll, body, layout = scrolling_body(self, 8)
        self._scroll = scroll

        model = QGroupBox("Model", body)
        form = QFormLayout(model)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.cell = QComboBox(model)
        for name in cell_names():
            self.cell.addItem(CELL_LABELS.get(name, name), name)
        self.cell.setToolTip(FIELDS["cell"].help)
        form.addRow("Cell", self.cell)
        self.description = DescriptionBox(model)  # a fixed height: fields never move
        self.description.setObjectName("cellDescription")
        self.description.setFrameShape(QFrame.Shape.NoFrame)
        self.description.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.description.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.description.viewport().setAutoFillBackground(False)
        self.description.setStyleSheet("QTextBrowser { background: transparent; }")
        self.description.setFixedHeight(
            self.description.fontMetrics().lineSpacing() * DESCRIPTION_LINES + 8)
        form.addRow(self.description)
        self.hidden = self._spin("hidden", model)
        form.addRow("Hidden size", self.hidden)
        self.layers = self._spin("layers", model)
        form.addRow("Layers", self.layers)
        self.dropout = self._double("dropout", model, step=0.05, decimals=2)
        form.addRow("Dropout", self.dropout)
        self.embedding = self._spin("embedding", model)
        form.addRow("Embedding size", self.embedding)
        self.attention = QComboBox(model)  # attention: the combo and its one-line description
        for name, (label, _text) in ATTENTION_CHOICES.items():
            self.attention.addItem(label, name)
        self.attention.setToolTip(FIELDS["attention"].help)
        form.addRow("Attention", self.attention)
        self.attention_description = QLabel(model)
        self.attention_description.setWordWrap(True)
        self.attention_description.setObjectName("attentionDescription")
        form.addRow(self.attention_description)
        self.attention.currentIndexChanged.connect(self._on_attention_chosen)
        self.recurrent_init = QComboBox(model)
        for name in RECURRENT_INITS:
            self.recurrent_init.addItem(INIT_LABELS.get(name, name), name)
        self.recurrent_init.setToolTip(FIELDS["recurrent_init"].help)
        form.addRow("Recurrent init", self.recurrent_init)
        self.radius_on = QCheckBox("Scale W_hh to", model)
        self.radius_on.setToolTip(FIELDS["recurrent_radius"].help)
        self.radius = self._double("recurrent_radius", model, step=0.1, decimals=3)
        self.radius.setMinimum(0.001)
        self.radius.setValue(1.0)
        row = QHBoxLayout()
        row.addWidget(self.radius_on)
        row.addWidget(self.radius, 1)
        form.addRow("Spectral radius", row)
        self.forget_on = QCheckBox("Set to", model)
        self.forget_on.setToolTip(FIELDS["forget_bias"].help)
        self.forget_bias = self._double("forget_bias", model, step=0.5, decimals=2)
        self.forget_bias.setValue(1.0)
        row = QHBoxLayout()
        row.addWidget(self.forget_on)
        row.addWidget(self.forget_bias, 1)
        form.addRow("Forget-gate bias", row)
        self.forget_error = self._error_label(model)
        form.addRow(self.forget_error)
        self.initial_radius = QLabel("–", model)
        self.initial_radius.setObjectName("initialRadius")
        self.initial_radius.setToolTip(
            "Spectral radius ρ of the encoder's recurrent weights W_hh at the start (the "
            "largest gate block for an LSTM or a GRU): what the run's first probe records")
        form.addRow("Initial ρ(W_hh)", self.initial_radius)
        self.gradient_reach = QLabel("–", model)
        self.gradient_reach.setObjectName("gradientReach")
        self.gradient_reach.setWordWrap(True)
        self.gradient_reach.setToolTip(
            "ρ^(T_in−1): going back one step multiplies the gradient by W_hhᵀ (and the "
            "activation's slope), so roughly this share of the last input step's gradient "
            "reaches the first")
        form.addRow("Gradient reach", self.gradient_reach)
        self.parameters = QLabel("–", model)
        self.parameters.setObjectName("parameterCount")
        self.parameters.setToolTip("Trainable parameters of the encoder-decoder on this dataset")
        form.addRow("Parameters", self.parameters)
        layout.addWidget(model)

        training = QGroupBox("Training", body)
        form = QFormLayout(training)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.optimizer = QComboBox(training)
        for name in OPTIMIZERS:
            self.optimizer.addItem({"adam": "Adam", "sgd": "SGD"}.get(name, name), name)
        form.addRow("Optimizer", self.optimizer)
        self.lr = QLineEdit(training)
        self.lr.setValidator(FieldValidator("lr", self.lr))
        self.lr.setToolTip(f"{FIELDS['lr'].help}: {FIELDS['lr'].allowed()}, e.g. 0.001 or 3e-4")
        form.addRow("Learning rate", self.lr)
        self.lr_error = self._error_label(training)
        form.addRow(self.lr_error)
        self.momentum = self._double("momentum", training, step=0.05, decimals=3)
        form.addRow("Momentum", self.momentum)
        self.batch_size = self._spin("batch_size", training)
        form.addRow("Batch size", self.batch_size)
        self.epochs = self._spin("epochs", training)
        form.addRow("Epochs", self.epochs)

        self.teacher_forcing = QSlider(Qt.Orientation.Horizontal, training)
        self.teacher_forcing.setRange(0, 100)
        self.teacher_forcing.setToolTip(FIELDS["teacher_forcing"].help)
        self.tf_label = QLabel(training)
        self.tf_label.setMinimumWidth(40)
        row = QHBoxLayout()
        row.addWidget(self.teacher_forcing, 1)
        row.addWidget(self.tf_label)
        form.addRow("Teacher forcing", row)
        self.tf_schedule = QCheckBox("Decay linearly to", training)
        self.tf_schedule.setToolTip("Lower teacher forcing step by step from the value "
                                    "above to this one by the end of the run")
        self.tf_end = QSlider(Qt.Orientation.Horizontal, training)
        self.tf_end.setRange(0, 100)
        self.tf_end_label = QLabel(training)
        self.tf_end_label.setMinimumWidth(40)
        row = QHBoxLayout()
        row.addWidget(self.tf_schedule)
        row.addWidget(self.tf_end, 1)
        row.addWidget(self.tf_end_label)
        form.addRow("", row)

        self.clip_on = QCheckBox("Clip to norm", training)
        self.clip_on.setToolTip(FIELDS["clip"].help)
        self.clip = QDoubleSpinBox(training)
        self.clip.setRange(0.01, 1e6)
        self.clip.setDecimals(2)
        self.clip.setValue(1.0)
        row = QHBoxLayout()
        row.addWidget(self.clip_on)
        row.addWidget(self.clip, 1)
        form.addRow("Gradient clipping", row)
        self.seed = self._spin("seed", training)
        form.addRow("Seed", self.seed)
        layout.addWidget(training)

        system = QGroupBox("Probes and device", body)
        form = QFormLayout(system)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.probe_every = QSpinBox(system)
        self.probe_every.setRange(0, INT32_MAX)
        self.probe_every.setSpecialValueText("automatic")
        self.probe_every.setSuffix(" steps")
        self.probe_every.setToolTip("Probe the gradient at every time step and the hidden "
                                    "states every N training steps (automatic: about 50 "
                                    "probes a run)")
        form.addRow("Probe every", self.probe_every)
        self.device = QComboBox(system)
        self.device.addItem("CPU", "cpu")
        if cuda_available():
            self.device.addItem("CUDA GPU", "cuda")
        self.device.setToolTip("Where to train. CUDA is offered only when a GPU is available.")
        form.addRow("Device", self.device)
        layout.addWidget(system)
        layout.addStretch(1)
        # each whole-number field says at the field when its value is out of range
        self._range_errors: dict[str, QLabel] = {}
        for name, box in self._ranged_fields().items():
            parent_form = box.parentWidget().layout()
            if not isinstance(parent_form, QFormLayout):
                continue
            row, _role = parent_form.getWidgetPosition(box)
            label = self._error_label(box.parentWidget())
            label.setObjectName(f"{name}Error")
            parent_form.insertRow(row + 1, label)
            self._range_errors[name] = label
        fit_width_to_content(self, scroll, 300)  # as wide as the fields need

        for widget in (self.cell, self.optimizer, self.device, self.attention, self.recurrent_init):
            widget.currentIndexChanged.connect(self._on_edited)
        for widget in (self.hidden, self.layers, self.embedding, self.batch_size, self.epochs,
                       self.seed, self.probe_every, self.dropout, self.momentum, self.clip,
                       self.radius, self.forget_bias):
            widget.valueChanged.connect(self._on_edited)
        for widget in (self.teacher_forcing, self.tf_end):
            widget.valueChanged.connect(self._on_edited)
        for widget in (self.tf_schedule, self.clip_on, self.radius_on, self.forget_on):
            widget.toggled.connect(self._on_edited)
        # the initial radius, off the GUI thread: the newest settings only
        self._preview_session = JobSession(self)
        self._preview = Latest(self._preview_session)
        self._preview_session.finished.connect(self._on_preview_done)
        self._preview_session.failed.connect(self._on_preview_failed)
        self._preview_key: tuple | None = None
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self._start_preview)
        self.lr.textChanged.connect(self._on_edited)

    def _spin(self, name: str, parent: QWidget) -> QSpinBox:
        """A whole-number field. Its box takes any number up to 2³¹−1 (a QSpinBox would
        silently keep 9999 of a typed 99999); a value over the setting's maximum is
        refused at the field by `_refresh`, with the allowed range."""
        spec = FIELDS[name]
        box = QSpinBox(parent)
        box.setRange(int(spec.minimum or 0), INT32_MAX)
        box.setToolTip(f"{spec.help[:1].upper()}{spec.help[1:]} ({spec.allowed()})")
        box.setAccelerated(True)
        return box

    def _double(self, name: str, parent: QWidget, *, step: float, decimals: int) -> QDoubleSpinBox:
        spec = FIELDS[name]
        box = QDoubleSpinBox(parent)
        box.setDecimals(decimals)
        box.setRange(float(spec.minimum or 0.0), float(spec.maximum or 1e6))
        box.setSingleStep(step)
        box.setToolTip(f"{spec.help[:1].upper()}{spec.help[1:]} ({spec.allowed()})")
        return box

    def _ranged_fields(self) -> dict[str, QSpinBox]:
        return {"hidden": self.hidden, "layers": self.layers, "embedding": self.embedding,
                "batch_size": self.batch_size, "epochs": self.epochs}

    def _range_problems(self) -> dict[str, str]:
        """Field name -> "hidden size must be 1–65,536 (99,999 typed)" for values over the
        setting's range."""
        out = {}
        for name, box in self._ranged_fields().items():
            spec = FIELDS[name]
            low, high = int(spec.minimum or 0), spec.maximum
            if high is not None and not low <= box.value() <= high:
                words = FIELD_WORDS.get(name, name.replace("_", " "))
                out[name] = (f"{words} must be {low:,}–{int(high):,} "
                             f"({box.value():,} typed)")
        return out

    @staticmethod
    def _error_label(parent: QWidget) -> QLabel:
        label = QLabel(parent)
        label.setObjectName("fieldError")
        label.setWordWrap(True)
        label.setStyleSheet("color: #b00020;")
        label.hide()
        return label

    # --- values -------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The settings as RunConfig field values (the last valid learning rate)."""
        try:
            lr = validate_field("lr", self.lr.text())
        except ConfigError:
            lr = self._last_lr
        return {
            "cell": self.cell.currentData(),
            "hidden": self.hidden.value(),
            "layers": self.layers.value(),
            "dropout": round(self.dropout.value(), 4),
            "embedding": self.embedding.value(),
            "optimizer": self.optimizer.currentData(),
            "lr": lr,
            "momentum": round(self.momentum.value(), 4),
            "batch_size": self.batch_size.value(),
            "epochs": self.epochs.value(),
            "teacher_forcing": self.teacher_forcing.value() / 100.0,
            "teacher_forcing_end": (self.tf_end.value() / 100.0
                                    if self.tf_schedule.isChecked() else None),
            "clip": round(self.clip.value(), 4) if self.clip_on.isChecked() else None,
            "seed": self.seed.value(),
            "probe_every": self.probe_every.value() or None,
            "device": self.device.currentData(),
            "attention": self.attention.currentData(),
            "recurrent_init": self.recurrent_init.currentData(),
            "recurrent_radius": (round(self.radius.value(), 6) if self.radius_on.isChecked()
                                 else None),
            "forget_bias": (round(self.forget_bias.value(), 6) if self.forget_on.isChecked()
                            else None),
        }

    def set_values(self, values: dict[str, Any]) -> None:
        """Show `values` (RunConfig field names); missing or invalid ones get defaults."""
        merged = default_values()
        for name, value in values.items():
            if name not in merged:
                continue
            try:
                merged[name] = validate_field(name, value)
            except ConfigError:
                continue
        building, self._building = self._building, True
        try:
            _select(self.cell, merged["cell"])
            self.hidden.setValue(int(merged["hidden"]))
            self.layers.setValue(int(merged["layers"]))
            self.dropout.setValue(float(merged["dropout"]))
            self.embedding.setValue(int(merged["embedding"]))
            _select(self.optimizer, merged["optimizer"])
            self._last_lr = float(merged["lr"])
            self.lr.setText(f"{float(merged['lr']):g}")
            self.momentum.setValue(float(merged["momentum"]))
            self.batch_size.setValue(int(merged["batch_size"]))
            self.epochs.setValue(int(merged["epochs"] or 1))
            self.teacher_forcing.setValue(round(float(merged["teacher_forcing"]) * 100))
            end = merged["teacher_forcing_end"]
            self.tf_schedule.setChecked(end is not None)
            self.tf_end.setValue(round(float(end if end is not None else 0.0) * 100))
            clip = merged["clip"]
            self.clip_on.setChecked(clip is not None)
            if clip is not None:
                self.clip.setValue(float(clip))
            self.seed.setValue(min(int(merged["seed"]), INT32_MAX))
            self.probe_every.setValue(min(int(merged["probe_every"] or 0), INT32_MAX))
            if not _select(self.device, merged["device"]):
                self.device.setCurrentIndex(0)  # e.g. "cuda" saved on a machine without one
            _select(self.attention, merged["attention"])
            self._on_attention_chosen()
            _select(self.recurrent_init, merged["recurrent_init"])
            radius = merged["recurrent_radius"]
            self.radius_on.setChecked(radius is not None)
            if radius is not None:
                self.radius.setValue(float(radius))
            bias = merged["forget_bias"]
            self.forget_on.setChecked(bias is not None)
            if bias is not None:
                self.forget_bias.setValue(float(bias))
        finally:
            self._building = building
        self._refresh()

    def is_valid(self) -> bool:
        return not self._errors

    def errors(self) -> dict[str, str]:
        """Field name -> the reason its value is refused."""
        return dict(self._errors)

    def run_config(self, data: str, inputs: str | None = None,
                   targets: str | None = None) -> RunConfig:
        """The RunConfig to train with on `data` (ConfigError if a field is invalid)."""
        if self._errors:
            name, message = next(iter(self._errors.items()))
            raise ConfigError(message)
        return RunConfig(data=str(data), inputs=inputs, targets=targets,
                         **self.values()).validate()

    # --- slots --------------------------------------------------------------------
    def _on_edited(self, *_args: Any) -> None:
        if self._building:
            return
        self._refresh()
        self.changed.emit()

    def _on_attention_chosen(self, *_args: Any) -> None:
        name = self.attention.currentData()
        self.attention_description.setText(ATTENTION_CHOICES.get(name, ("", ""))[1])

    def _on_dataset_changed(self, *_args: Any) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Derived state: description, enabled fields, labels, errors, parameter count."""
        cell = self.cell.currentData()
        self.description.setText(cell_description(cell))
        self.momentum.setEnabled(self.optimizer.currentData() == "sgd")
        self.dropout.setEnabled(self.layers.value() > 1)
        self.dropout.setToolTip("Dropout between stacked layers (needs 2 or more layers)")
        summary = getattr(self.document, "summary", None)
        tokens = summary is not None and "tokens" in (summary.inputs.kind, summary.targets.kind)
        self.embedding.setEnabled(tokens)
        self.embedding.setToolTip("Size of the token embedding" if tokens else
                                  "Only for token data: this dataset is continuous")
        self.tf_label.setText(f"{self.teacher_forcing.value()} %")
        self.tf_end.setEnabled(self.tf_schedule.isChecked())
        self.tf_end_label.setText(f"{self.tf_end.value()} %")
        self.clip.setEnabled(self.clip_on.isChecked())
        self.radius.setEnabled(self.radius_on.isChecked())
        self.forget_bias.setEnabled(self.forget_on.isChecked())
        self.forget_on.setToolTip(FIELDS["forget_bias"].help if cell == "lstm" else
                                  "Only an LSTM has a forget gate")

        errors: dict[str, str] = self._range_problems()
        for name, box in self._ranged_fields().items():
            label = self._range_errors.get(name) if hasattr(self, "_range_errors") else None
            bad = name in errors
            box.setStyleSheet("QSpinBox { color: #b00020; border: 1px solid #b00020; }"
                              if bad else "")
            if label is not None:
                label.setText(errors.get(name, ""))
                label.setVisible(bad)
        try:
            self._last_lr = validate_field("lr", self.lr.text())
        except ConfigError as exc:
            errors["lr"] = str(exc)
        try:
            check_forget_bias(cell, self.forget_bias.value() if self.forget_on.isChecked()
                              else None)
        except ConfigError as exc:
            errors["forget_bias"] = str(exc)
        self.forget_error.setText(errors.get("forget_bias", ""))
        self.forget_error.setVisible("forget_bias" in errors)
        self.lr_error.setText(errors.get("lr", ""))
        self.lr_error.setVisible("lr" in errors)
        self.lr.setProperty("invalid", "lr" in errors)
        self.lr.style().unpolish(self.lr)
        self.lr.style().polish(self.lr)
        self._errors = errors
        valid = not errors
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)

        if errors.keys() & self._ranged_fields().keys():  # no model of a refused size
            self.parameters.setText("–")
            self._preview_timer.stop()
            self._preview_key = None
            self.initial_radius.setText("–")
            self.gradient_reach.setText("–")
            return
        count = count_parameters(self.values(), summary)
        self.parameters.setText("–" if count is None else f"{count:,}")
        self._schedule_preview(summary)

    # --- the initial radius ---------------------------------------------------------
    def preview_pending(self) -> bool:
        """A preview is waiting or being computed (tests, scripts)."""
        return (self._preview_timer.isActive() or self._preview_session.is_running()
                or self._preview.waiting)

    def _preview_config(self) -> RunConfig:
        values = self.values()
        return RunConfig(data="(preview)", **{k: v for k, v in values.items()
                                              if k not in ("device",)})

    def _schedule_preview(self, summary: Any) -> None:
        config = self._preview_config()
        steps = summary.inputs.steps if summary is not None else None
        kinds = ((summary.inputs.kind, summary.inputs.features, summary.inputs.vocab_size)
                 if summary is not None else None)
        key = (config.cell, config.hidden, config.layers, config.embedding,
               config.recurrent_init, config.recurrent_radius, config.seed, steps, kinds)
        if key == self._preview_key:
            return
        self._preview_key = key
        from workbench.init_preview import known_radius

        known = known_radius(config)
        if known is not None:  # no need to build the model: the settings fix it
            self._show_preview(known, steps)
            return
        self.initial_radius.setText("computing…")
        self._preview_timer.start()

    def _start_preview(self) -> None:
        if training_in_process():  # building a model would draw from the run's generator
            self.initial_radius.setText("shown once no run trains")
            self.gradient_reach.setText("–")
            self._preview_key = None  # the next refresh tries again
            return
        config, summary = self._preview_config(), getattr(self.document, "summary", None)

        def compute(_sink: Any) -> Any:
            from workbench.init_preview import init_preview

            return init_preview(config, summary)

        self._preview.submit(compute)

    def _on_preview_done(self, result: Any) -> None:
        if result is None or self._preview.waiting:
            return
        self._show_preview(result.radius, result.steps)

    def _on_preview_failed(self, failure: Any) -> None:
        self.initial_radius.setText("–")
        self.gradient_reach.setText(failure.message.splitlines()[0] if failure.message else "–")

    def _show_preview(self, radius: float, steps: int | None) -> None:
        first, second = describe_preview(radius, steps)
        self.initial_radius.setText(first)
        self.gradient_reach.setText(second)


def _select(combo: QComboBox, data: Any) -> bool:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)
    return index >= 0
