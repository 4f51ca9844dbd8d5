"""Exported optimizers, one generated module each (``discovered/NAME.py``)."""
