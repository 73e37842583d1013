"""The ``prm-probe`` verbs, one module per family, each a small command over a library call.

Every module has ``register(sub, common)``, which adds its verbs to the parser of :mod:`prm_probe.cli`; a verb's
handler parses nothing itself, calls the library, and prints what it returns. Heavy modules are imported inside
the handlers, so ``prm-probe --help`` starts fast.
"""
