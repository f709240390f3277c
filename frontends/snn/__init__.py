"""Spiking frontends: exact quantized-ANN to ST-BIF conversion (layer chains for the engine,
whole graphs with transformer ops), their time-stepped golden runs, integer neuron models, and
the NIR importer."""

from .convert import StbifLayer, StbifNetwork, convert
from .graph import SNN_OPS, GraphRun, SpikingGraph, convert_graph, run_graph
from .neurons import cuba_lif_step, if_step, lif_step, qann, stbif_step
from .simulate import SnnRun, run_network

__all__ = [
    "StbifLayer",
    "StbifNetwork",
    "convert",
    "SNN_OPS",
    "SpikingGraph",
    "GraphRun",
    "convert_graph",
    "run_graph",
    "SnnRun",
    "run_network",
    "stbif_step",
    "qann",
    "if_step",
    "lif_step",
    "cuba_lif_step",
]
