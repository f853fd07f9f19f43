"""models: recurrent cells, the encoder-decoder, attention, beam search and the probes
(torch and numpy only)."""

from models.attention import ATTENTION_KINDS
from models.beam import BeamResult, Candidate, Hypothesis, beam_search
from models.cells import CELLS, CellInfo
from models.init import (
    initialize_recurrent,
    initialize_seq2seq,
    recurrent_init_names,
    seq2seq_spectral_radii,
    spectral_radii,
)
from models.probes import ProbeResult, probe
from models.recurrent import Recurrent, RecurrentTrace
from models.seq2seq import (
    DecodedStep,
    DecoderState,
    Generated,
    Seq2Seq,
    Seq2SeqConfig,
    Seq2SeqTrace,
    SideConfig,
    parameter_count,
)

__all__ = [
    "ATTENTION_KINDS",
    "BeamResult",
    "CELLS",
    "Candidate",
    "CellInfo",
    "DecodedStep",
    "DecoderState",
    "Generated",
    "Hypothesis",
    "ProbeResult",
    "Recurrent",
    "RecurrentTrace",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqTrace",
    "SideConfig",
    "beam_search",
    "initialize_recurrent",
    "initialize_seq2seq",
    "parameter_count",
    "probe",
    "recurrent_init_names",
    "seq2seq_spectral_radii",
    "spectral_radii",
]
