"""The physics specification and its reference: the bottom layer of brain_ai.

Everything here imports only :mod:`brain_ai.errors` and itself: the named rules and their
integer codes (:mod:`.rules`), surrogate math (:mod:`.surrogates`), the explicit state
(:mod:`.state`), the reference step and multi-step (:mod:`.functional`), truncated-BPTT windows
(:mod:`.windows`), the axis helpers (:mod:`.axes`) and peer parameter mappings
(:mod:`.mappings`). The kernels (:mod:`brain_ai.kernels`) sit on top of it; the neuron
modules (:mod:`brain_ai.core`) on top of those.
"""
