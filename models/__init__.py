"""models: recurrent cells, the encoder-decoder and its probes (torch and numpy only)."""

from models.cells import CELLS, CellInfo, parameter_count
from models.init import (
    initialize_recurrent,
    initialize_seq2seq,
    recurrent_init_names,
    seq2seq_spectral_radii,
    spectral_radii,
)
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
    "initialize_recurrent",
    "initialize_seq2seq",
    "parameter_count",
    "probe",
    "recurrent_init_names",
    "seq2seq_spectral_radii",
    "spectral_radii",
]
