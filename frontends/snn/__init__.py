"""Spiking frontends: exact quantized-ANN to ST-BIF conversion, its time-stepped golden run,
integer neuron models, and the NIR importer."""

from .convert import StbifLayer, StbifNetwork, convert
from .neurons import cuba_lif_step, if_step, lif_step, qann, stbif_step
from .simulate import SnnRun, run_network

__all__ = [
    "StbifLayer",
    "StbifNetwork",
    "convert",
    "SnnRun",
    "run_network",
    "stbif_step",
    "qann",
    "if_step",
    "lif_step",
    "cuba_lif_step",
]
