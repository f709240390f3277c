"""IR in, Amaranth components and Verilog out. One sub-package per engine."""
