"""cocotb test modules. They run inside the simulator and read the artefact named by the
environment variable ``NNLOOM_ARTEFACT``."""
