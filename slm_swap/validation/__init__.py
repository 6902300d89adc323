"""Checking one model output against the tool signatures its request offered: the router's validator.

It answers accept or reject with a reason and never changes the output. Written from the signatures themselves,
with no schema library (v0's choice): the track's format, an offered name, required parameters present, no unknown
parameter, each value of its declared type and among its enum where one is declared.
"""
