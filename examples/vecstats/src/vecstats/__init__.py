"""Statistics over lists of numbers, computed in x86-64 assembly."""

from vecstats._native import mean

__all__ = ["mean"]
