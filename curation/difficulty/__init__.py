"""Difficulty: pass@k of a model per sample (``scoring``), its knob set (``config``), on Ray (``ray``)."""
