"""Example models nnloom ships: each is made from data bundled with a PyPI package."""
