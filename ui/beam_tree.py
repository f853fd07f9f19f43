"""The beam tree: what a beam search considered, and what it would say from a prefix.

A beam search keeps the k most likely prefixes at every step. The tree shows, step
by step from left to right, the tokens it considered (each live hypothesis's best
extensions): the ones it kept in full colour, the ones it pruned faintly, and the
path of the best hypothesis in bold, as Seq2Seq-Vis draws it. A finished hypothesis
ends with its score, log P / L^alpha.

Clicking a token forces the prefix that ends with it (the tokens on the path from
the start to it) and decodes the rest again: "what would the model say after this?".
That decode runs in the background (`PrefixDecoder`: a ui.jobs Latest over a
JobSession, so only the newest click is computed), with the run's best (else latest)
checkpoint: for a run still training, that is its latest checkpoint, not the live
model, which only the training thread may touch; the header says which.

`BeamTreeWindow` is the window the Predictions panel opens; `BeamTreeView` the
drawing itself (a QGraphicsView), usable alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from ui.jobs import JobSession, Latest
from ui.plots import style

STEP_WIDTH = 78  # pixels between steps
ROW_HEIGHT = 24  # pixels between the tokens of one step
KEPT_COLOR = "#222222"
PRUNED_ALPHA = 0.3  # pruned branches: faint
CHOSEN_COLOR = "#D55E00"  # the best hypothesis's path: bold, vermillion
PREFIX_COLOR = "#0072B2"  # a forced prefix: blue
START = "<s>"


def token_label(token: int, vocab: tuple[str, ...] | None) -> str:
    """A token id as the tree shows it: its word, else the id."""
    if vocab is not None and 0 <= token < len(vocab):
        return vocab[token]
    return str(token)


def prefix_of(tree: Any, step: int, index: int) -> tuple[int, ...]:
    """The token ids on the path from the start to candidate `index` of step `step`."""
    tokens: list[int] = []
    while step >= 0 and index >= 0:
        candidate = tree[step][index]
        tokens.append(int(candidate.token))
        index, step = int(candidate.parent), step - 1
    return tuple(reversed(tokens))


def layout_tree(tree: Any) -> list[list[int]]:
    """Row of each candidate of each step: children grouped under their parent's row
    (in the parent's order), best first within a parent, so no two branches cross."""
    rows: list[list[int]] = []
    for t, step in enumerate(tree):
        def key(i: int, t: int = t, step: Any = step) -> tuple[float, float]:
            parent = int(step[i].parent)
            above = rows[t - 1][parent] if t > 0 and 0 <= parent < len(rows[t - 1]) else 0
            return (above, -float(step[i].log_prob))

        order = sorted(range(len(step)), key=key)
        row = [0] * len(step)
        for r, i in enumerate(order):
            row[i] = r
        rows.append(row)
    return rows


class _TokenItem(QtWidgets.QGraphicsSimpleTextItem):
    """One candidate of the tree: clickable, remembers where it is."""

    def __init__(self, text: str, step: int, index: int) -> None:
        super().__init__(text)
        self.step, self.index = step, index
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)


class BeamTreeView(QtWidgets.QGraphicsView):
    """Draws a models.beam.BeamResult; `token_clicked(step, index)` on a click."""

    token_clicked = QtCore.Signal(int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QtWidgets.QGraphicsScene(self))
        self.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(QtGui.QColor(style.BACKGROUND))
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop)
        self.setMinimumSize(*style.PLOT_MIN_SIZE)
        self.result: Any | None = None
        self.items: dict[tuple[int, int], _TokenItem] = {}
        self.chosen: set[tuple[int, int]] = set()

    def show_result(self, result: Any, vocab: tuple[str, ...] | None = None) -> None:
        """Draw the tree of `result` (a BeamResult recorded with its tree)."""
        scene = self.scene()
        scene.clear()
        self.items = {}
        self.result = result
        tree = result.tree
        best = result.hypotheses[0] if result.hypotheses else None
        self.chosen = {(t, i) for t, i in enumerate(best.nodes)} if best is not None else set()
        rows = layout_tree(tree)
        forced = len(result.prefix)
        start = scene.addSimpleText(START)
        start.setBrush(QtGui.QColor(KEPT_COLOR))
        start.setPos(0, 0)
        anchors: dict[tuple[int, int], QtCore.QPointF] = {(-1, -1): QtCore.QPointF(
            start.boundingRect().width() + 2, start.boundingRect().height() / 2)}
        for t, step in enumerate(tree):
            for i, candidate in enumerate(step):
                item = self._token(candidate, t, i, rows[t][i], t < forced, vocab)
                parent = (t - 1, int(candidate.parent)) if t > 0 else (-1, -1)
                self._branch(anchors.get(parent), item, (t, i) in self.chosen, candidate.kept)
                rect = item.sceneBoundingRect()
                anchors[(t, i)] = QtCore.QPointF(rect.right() + 2, rect.center().y())
        for h in result.hypotheses:
            if h.nodes:
                self._score(h, anchors[(len(h.nodes) - 1, h.nodes[-1])])
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-8, -8, 16, 8))

    def _token(self, candidate: Any, t: int, i: int, row: int, forced: bool,
               vocab: tuple[str, ...] | None) -> _TokenItem:
        text = token_label(int(candidate.token), vocab)
        item = _TokenItem(text, t, i)
        font = item.font()
        chosen = (t, i) in self.chosen
        font.setBold(chosen)
        item.setFont(font)
        color = QtGui.QColor(PREFIX_COLOR if forced else (CHOSEN_COLOR if chosen else KEPT_COLOR))
        if not candidate.kept:
            color.setAlphaF(PRUNED_ALPHA)
        item.setBrush(color)
        item.setPos((t + 1) * STEP_WIDTH, row * ROW_HEIGHT)
        state = "kept" if candidate.kept else "pruned"
        item.setToolTip(f"step {t + 1}: {text!r} (id {int(candidate.token)}), cumulative "
                        f"log P {float(candidate.log_prob):.3f}, {state}"
                        + ("; forced" if forced else "")
                        + "\nClick: force the prefix ending here and decode the rest again")
        self.scene().addItem(item)
        self.items[(t, i)] = item
        return item

    def _branch(self, origin: QtCore.QPointF | None, item: _TokenItem, chosen: bool,
                kept: bool) -> None:
        if origin is None:
            return
        rect = item.sceneBoundingRect()
        color = QtGui.QColor(CHOSEN_COLOR if chosen else "#888888")
        if not kept:
            color.setAlphaF(PRUNED_ALPHA)
        pen = QtGui.QPen(color, 2.5 if chosen else 1.0)
        line = self.scene().addLine(origin.x(), origin.y(), rect.left() - 2, rect.center().y(),
                                    pen)
        line.setZValue(-1)

    def _score(self, hypothesis: Any, anchor: QtCore.QPointF) -> None:
        label = self.scene().addSimpleText(f"{hypothesis.score:.2f}")
        label.setBrush(QtGui.QColor("#666666"))
        label.setPos(anchor.x() + 4, anchor.y() - label.boundingRect().height() / 2)

    def token_at(self, step: int, index: int) -> _TokenItem:
        return self.items[(step, index)]

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        item = self.itemAt(event.position().toPoint())
        if isinstance(item, _TokenItem) and event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.token_clicked.emit(item.step, item.index)
            event.accept()
            return
        super().mousePressEvent(event)


# -- re-decoding in the background -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Decoded:
    """A re-decode's result: the search from `prefix`, its scored hypotheses, and the
    checkpoint that decoded it."""

    run_id: str
    index: int
    prefix: tuple[int, ...]
    search: Any  # models.beam.BeamResult
    hypotheses: tuple  # workbench.predictions.ScoredHypothesis
    which: str
    step: int


class PrefixDecoder(QtCore.QObject):
    """Decodes a sample again from a forced prefix with a run's checkpoint, in a job.

    `request(...)` from the GUI thread; `decoded(Decoded)` or `failed(str)` follow in
    the GUI thread. Only the newest request waiting is computed (ui.jobs.Latest); the
    model and dataset of the last run are kept while its checkpoint file is the same.
    """

    decoded = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self, runs_dir: str | Path | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        from workbench.predictions import RunModelCache

        self.job = JobSession(self)
        self.job.thread_name = "beam"
        self.job.finished.connect(self._on_finished)
        self._latest = Latest(self.job)
        self._cache = RunModelCache(runs_dir)  # touched by one job at a time

    def request(self, run_id: str, split: str, index: int, beam: int, length_penalty: float,
                prefix: tuple[int, ...]) -> None:
        self._latest.submit(
            lambda _sink: self._attempt(run_id, split, index, beam, length_penalty, prefix))

    def _attempt(self, run_id: str, split: str, index: int, beam: int, length_penalty: float,
                 prefix: tuple[int, ...]) -> Decoded | str:
        """The job: a Decoded, or the message saying why there is none."""
        from workbench.predictions import beam_search_sample

        try:
            loaded = self._cache.load(run_id)
            search, hypotheses = beam_search_sample(
                loaded.model, loaded.dataset, split, index, loaded.normalization, beam=beam,
                length_penalty=length_penalty, prefix=prefix)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI
            return f"{run_id}: {exc}"
        return Decoded(run_id, index, tuple(prefix), search, hypotheses, loaded.which,
                       loaded.step)

    def _on_finished(self, result: Decoded | str | None) -> None:
        if isinstance(result, Decoded):
            self.decoded.emit(result)
        elif isinstance(result, str):
            self.failed.emit(result)

    def close(self) -> None:
        """Finish the decode in progress and release the model and the data."""
        self._latest.drop_waiting()
        self.job.wait(60_000)
        self._cache.close()


class BeamTreeWindow(QtWidgets.QWidget):
    """The beam tree of one prediction, and its re-decodes from clicked prefixes."""

    def __init__(self, runs_dir: str | Path | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)
        self.setWindowTitle("Beam search tree")
        self.prediction: Any | None = None
        self.search: Any | None = None
        self.hypotheses: tuple = ()
        self.decoder = PrefixDecoder(runs_dir, self)
        self.decoder.decoded.connect(self._on_decoded)
        self.decoder.failed.connect(self._on_failed)
        self.header = QtWidgets.QLabel("")
        self.header.setWordWrap(True)
        self.reset_button = QtWidgets.QPushButton("Decode from the start")
        self.reset_button.setToolTip("Forget the forced prefix and show the search as "
                                     "the model makes it")
        self.reset_button.clicked.connect(self._on_reset)
        self.reset_button.setEnabled(False)
        self.view = BeamTreeView(self)
        self.view.token_clicked.connect(self._on_token_clicked)
        self.ranking = QtWidgets.QLabel("")
        self.ranking.setWordWrap(True)
        self.ranking.setTextFormat(QtCore.Qt.TextFormat.RichText)
        legend = QtWidgets.QLabel(
            f'<span style="color:{CHOSEN_COLOR};"><b>bold</b></span>: the best hypothesis; '
            "faint: pruned; "
            f'<span style="color:{PREFIX_COLOR};">blue</span>: a forced prefix; the number '
            "after a finished hypothesis is its score, log P / length^α. Click a token to "
            "force the prefix ending there.")
        legend.setWordWrap(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.reset_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.ranking)
        layout.addWidget(legend)
        self.resize(760, 480)

    @property
    def prefix(self) -> tuple[int, ...]:
        """The prefix forced now (empty: the search as the model makes it)."""
        return tuple(self.search.prefix) if self.search is not None else ()

    def show_prediction(self, prediction: Any) -> None:
        """Show the search a Prediction holds (its `search`, made where it was predicted)."""
        self.prediction = prediction
        if prediction.search is None:
            self.search, self.hypotheses = None, ()
            self.view.scene().clear()
            self.header.setText("No beam search for this prediction (token targets only).")
            return
        self._show(prediction.search, prediction.hypotheses, "as predicted")

    def follow(self, prediction: Any) -> None:
        """A newer prediction of the panel: shown unless the user is exploring a prefix
        (or it is another sample or run, which is always shown)."""
        same = (self.prediction is not None and prediction.run_id == self.prediction.run_id
                and prediction.index == self.prediction.index)
        if not (same and self.prefix):
            self.show_prediction(prediction)

    def choose(self, step: int, index: int) -> None:
        """Force the prefix that ends at candidate `index` of step `step` (as a click)."""
        if self.search is None or self.prediction is None:
            return
        prefix = prefix_of(self.search.tree, step, index)
        p = self.prediction
        self.header.setText(self._header_text(p) + " · decoding from the prefix "
                            f"{self._words(prefix)!r}…")
        self.decoder.request(p.run_id or "", p.split, p.index, self.search.beam,
                             self.search.length_penalty, prefix)

    def close_decoder(self) -> None:
        self.decoder.close()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.decoder.close()
        super().closeEvent(event)

    # -- internals ----------------------------------------------------------------------

    def _show(self, search: Any, hypotheses: tuple, source: str) -> None:
        self.search, self.hypotheses = search, tuple(hypotheses)
        vocab = getattr(self.prediction, "vocab", None)
        self.view.show_result(search, vocab)
        text = self._header_text(self.prediction)
        if search.prefix:
            text += f" · forced prefix {self._words(search.prefix)!r}"
        self.header.setText(f"{text} · {source}")
        self.reset_button.setEnabled(bool(search.prefix))
        self.ranking.setText(self._ranking_html())

    def _words(self, ids: tuple[int, ...]) -> str:
        vocab = getattr(self.prediction, "vocab", None)
        words = [token_label(int(i), vocab) for i in ids]
        return ("" if all(len(w) == 1 for w in words) else " ").join(words)

    def _header_text(self, p: Any) -> str:
        search = self.search
        beam = f"beam {search.beam}, α = {search.length_penalty:g}" if search else ""
        return f"Validation sample {p.index}" + (f" of run {p.run_id}" if p.run_id else "") \
            + (f" · {beam}" if beam else "")

    def _ranking_html(self) -> str:
        rows = []
        for rank, h in enumerate(self.hypotheses, 1):
            text = h.text if h.text is not None else " ".join(map(str, h.ids.tolist()))
            mark = "✓ exact" if h.exact else ("cut off" if not h.ended else "")
            rows.append(f"{rank}. <b>{text}</b> score {h.score:.3f} (log P {h.log_prob:.3f})"
                        + (f" {mark}" if mark else ""))
        return "<br>".join(rows)

    def _on_token_clicked(self, step: int, index: int) -> None:
        self.choose(step, index)

    def _on_reset(self) -> None:
        if self.prediction is None or self.search is None:
            return
        p = self.prediction
        self.decoder.request(p.run_id or "", p.split, p.index, self.search.beam,
                             self.search.length_penalty, ())

    def _on_decoded(self, result: Decoded) -> None:
        p = self.prediction
        if p is None or result.run_id != (p.run_id or "") or result.index != p.index:
            return  # the panel moved on meanwhile
        self._show(result.search, result.hypotheses,
                   f"decoded with the {result.which} checkpoint (step {result.step:,})")

    def _on_failed(self, message: str) -> None:
        self.header.setText(f"Could not decode: {message}")

