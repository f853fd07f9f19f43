"""models: recurrent cells, the encoder-decoder and its probes (torch and numpy only)."""

from models.cells import CELLS, CellInfo, parameter_count
from models.probes import ProbeResult, probe
from models.recurrent import Recurrent, RecurrentTrace
from models.seq2seq import Generated, Seq2Seq, Seq2SeqConfig, Seq2SeqTrace, SideConfig

__all__ = [
    "CELLS",
    "CellInfo",
    "Generated",
    "ProbeResult",
    "Recurrent",
    "RecurrentTrace",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqTrace",
    "SideConfig",
    "parameter_count",
    "probe",
]
