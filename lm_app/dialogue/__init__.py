"""Dialogue models (HRED, VHRED and the flat seq2seq baseline) and their data.

Nothing here is imported by :mod:`lm_app.config` but :mod:`.settings`, so
that module must stay free of TensorFlow: the CLI checks flags before it loads.
"""
