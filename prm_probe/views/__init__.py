"""Reading finished runs and logs for people: run comparison (``compare``) and figures (``plots``).
May import :mod:`prm_probe.core`, never :mod:`prm_probe.training`.
"""
