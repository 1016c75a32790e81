"""What ``to_nir(..., carry="metadata")`` writes into node metadata, and how it comes back.

A carried neuron is stored under ``node.metadata["brain_ai"]`` as::

    {"spec": "<JSON: class, constructor options, tensor shapes and dtypes>",
     "state": {state_dict key: numpy array}}

JSON keeps every option exactly (floats as their shortest round-trip repr); the arrays are the
module's ``state_dict`` bit for bit (``nir.write``/``nir.read`` keep numpy arrays as they are).
Only brain_ai's own classes and built-in surrogates are rebuilt from a spec, never an
arbitrary import path.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.errors import ConversionError
from brain_ai.nir.modules import LeakyIntegrator, OffsetLIFNeuron
from brain_ai.physics import surrogates as sg

__all__ = ["KEY", "decode", "encode", "neuron_from_spec", "neuron_spec", "surrogate_from_spec",
           "surrogate_spec"]

#: The metadata key brain_ai writes (graph and node level).
KEY = "brain_ai"

#: Surrogates a spec may name: the built-in classes only.
_SURROGATES: dict[str, type[sg.Surrogate]] = {
    cls.__name__: cls for cls in vars(sg).values()
    if isinstance(cls, type) and issubclass(cls, sg.Surrogate) and cls is not sg.Surrogate
}

#: Neuron classes a spec may name.
NEURON_CLASSES: dict[str, type[SpikingNeuronBase]] = {
    cls.__name__: cls for cls in (LIFNeuron, RecurrentLIFNeuron, AdaptiveLIFNeuron,
                                  OffsetLIFNeuron, LeakyIntegrator)
}


def surrogate_spec(where: str, s: sg.Surrogate) -> dict[str, Any]:
    """``{"class": name, **fields}`` of a built-in surrogate."""
    name = type(s).__name__
    if _SURROGATES.get(name) is not type(s):
        raise ConversionError(where, "only built-in surrogates can be carried in metadata",
                              got=repr(s), expected=" | ".join(sorted(_SURROGATES)),
                              hint="use a surrogate of brain_ai.physics.surrogates")
    return {"class": name, **{f.name: getattr(s, f.name) for f in fields(s)}}


def surrogate_from_spec(spec: dict[str, Any]) -> sg.Surrogate:
    args = dict(spec)
    cls = _SURROGATES.get(args.pop("class", ""))
    if cls is None:
        raise ConversionError("from_nir", "unknown surrogate in brain_ai metadata",
                              got=spec, expected=" | ".join(sorted(_SURROGATES)),
                              hint="the file was written by another brain_ai version; pass "
                                   "use_metadata=False to import the NIR semantics only")
    return cls(**args)


def _own(m: nn.Module, names: tuple[str, ...]) -> bool:
    """Whether one of ``names`` is a learnable parameter of ``m`` itself."""
    return any(isinstance(m._parameters.get(n), nn.Parameter) for n in names)


def neuron_spec(where: str, m: SpikingNeuronBase) -> dict[str, Any]:
    """Constructor options that rebuild ``m`` (tensor values come from its ``state_dict``)."""
    if type(m).__name__ not in NEURON_CLASSES or NEURON_CLASSES[type(m).__name__] is not type(m):
        raise ConversionError(where, f"{type(m).__name__} cannot be carried in metadata",
                              got=type(m).__name__, expected=" | ".join(NEURON_CLASSES),
                              hint="AdvancedLIFNeuron (learnable fractional delays) has no NIR "
                                   "form; export a LIFNeuron instead")
    kw: dict[str, Any] = dict(
        features=None if m.features is None else list(m.features), charge=m.charge,
        v_reset=m.v_reset, reset=m.reset, reset_timing=m.reset_timing,
        comparator=m.comparator, surrogate=surrogate_spec(where, m.surrogate),
        detach_reset=m.detach_reset, beta_param=m.beta_param, beta_clamp=list(m.beta_clamp),
        refractory_steps=m.refractory_steps, dtype_policy=m.dtype_policy,
        chunk_size=m.chunk_size, backend=m.backend, kernel=m.kernel,
        learn_beta=_own(m, ("beta", "beta_logit")), learn_tau=_own(m, ("tau", "w")),
        learn_threshold=_own(m, ("threshold",)), learn_alpha=_own(m, ("alpha",)),
        learn_graded_spikes_factor=_own(m, ("graded_spikes_factor",)),
    )
    if isinstance(m, AdaptiveLIFNeuron):
        kw["learn_adaptation"] = _own(m, ("adapt_scale",))
    if isinstance(m, RecurrentLIFNeuron):
        rec = m.recurrent
        kw.update(recurrent=m.recurrent_kind, bias=getattr(rec, "bias", None) is not None,
                  learn_recurrent=any(p.requires_grad for p in rec.parameters()),
                  in_features=None if m.input_proj is None else m.input_proj.in_features)
        if m.recurrent_kind == "conv2d":
            kw["kernel_size"] = int(rec.kernel_size[0])  # type: ignore[index]
            if m.features is None:
                kw["features"] = int(rec.in_channels)  # type: ignore[arg-type]
    state = m.state_dict()
    return {"class": type(m).__name__, "kwargs": kw,
            "tensors": {k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
                        for k, v in state.items()}}


def neuron_from_spec(where: str, spec: dict[str, Any], state: dict[str, Any]
                     ) -> SpikingNeuronBase:
    """Rebuild a neuron from :func:`neuron_spec` and its carried ``state_dict`` arrays."""
    cls = NEURON_CLASSES.get(spec.get("class", ""))
    if cls is None or cls is AdvancedLIFNeuron:
        raise ConversionError(where, "unknown neuron class in brain_ai metadata",
                              got=spec.get("class"), expected=" | ".join(NEURON_CLASSES),
                              hint="pass use_metadata=False to import the NIR semantics only")
    tensors: dict[str, Tensor] = {}
    for key, (shape, dtype) in spec["tensors"].items():
        if key not in state:
            raise ConversionError(where, f"the carried state lacks {key!r}", got=sorted(state),
                                  expected=sorted(spec["tensors"]),
                                  hint="the metadata is incomplete; pass use_metadata=False")
        arr = np.asarray(state[key]).reshape(shape)
        tensors[key] = torch.as_tensor(arr.copy(), dtype=getattr(torch, dtype))
    kw = dict(spec["kwargs"])
    kw["surrogate"] = surrogate_from_spec(kw["surrogate"])
    kw["beta_clamp"] = tuple(kw["beta_clamp"])
    if kw.get("features") is not None and not isinstance(kw["features"], int):
        kw["features"] = tuple(kw["features"])
    charge = kw["charge"]
    if charge == "beta":
        kw["beta"] = (tensors["beta"] if "beta" in tensors
                      else torch.sigmoid(tensors["beta_logit"].double()).float())
    else:
        kw["beta"] = None
        kw["tau"] = tensors["tau"] if "tau" in tensors else 1.0 / torch.sigmoid(tensors["w"])
    kw["threshold"] = tensors["threshold"]
    for name in ("alpha", "input_gain", "graded_spikes_factor", "input_bias",
                 "membrane_offset", "adapt_scale", "adapt_decay"):
        if name in tensors:
            kw[name] = tensors[name]
    if cls is RecurrentLIFNeuron and kw["recurrent"] == "one_to_one":
        kw["V"] = tensors["recurrent.V"]
    if cls is LeakyIntegrator:
        kw.pop("reset", None)
    m = cls(**kw)
    m.load_state_dict(tensors, strict=True)
    return m


def encode(spec: dict[str, Any], state: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """The node-metadata value: the JSON spec and the arrays."""
    out: dict[str, Any] = {"spec": json.dumps(spec, sort_keys=True)}
    if state:
        # flat arrays: HDF5 cannot compress 0-d datasets (the spec keeps every shape)
        out["state"] = {k: v.detach().cpu().reshape(-1).numpy().copy() for k, v in state.items()}
    return out


def decode(where: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(spec, state arrays)`` from a node's ``metadata["brain_ai"]``."""
    try:
        raw = value["spec"]
        spec = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
        state = dict(value.get("state", {}))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConversionError(where, "unreadable brain_ai metadata", got=f"{exc}",
                              expected="{'spec': JSON, 'state': arrays}",
                              hint="pass use_metadata=False to import the NIR semantics only"
                              ) from exc
    return spec, state
