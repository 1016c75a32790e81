"""Save and load models without pickle: weights in safetensors, the model as declarative JSON.

:func:`save` writes one ``.safetensors`` file: the tensors of ``model.state_dict()`` and, in
the file's header metadata (key ``"brain_ai.model"``), a JSON description of the module tree::

    {"format": "brain_ai.model", "version": 1,
     "model": {"type": "SpikingSequential", "args": {"fold_time": false, "chunk_size": null},
               "training": false,
               "children": [["0", {"type": "Linear", "args": {"in_features": 4, ...}}],
                            ["1", {"type": "LIFNeuron",
                                   "args": {"beta": {"tensor": "beta"}, ...}}]]},
     "frozen": ["names of parameters with requires_grad=False"]}

:func:`load` rebuilds the tree from that description and the tensors. Nothing in the file is
ever imported or executed: a ``"type"`` is looked up in a fixed table of known layers
(:data:`LAYER_TYPES`: ``nn.Sequential``, :class:`~brain_ai.core.snn.SpikingSequential`, the
brain_ai neurons, and plain torch layers such as ``Linear``, ``Conv2d``, pools, norms,
``Flatten``, ``Dropout``, activations), and its ``"args"`` must be among that layer's
constructor arguments. A tensor argument (``{"tensor": key}``) is built as a valid placeholder
of the saved tensor's shape and dtype; the saved values then replace every tensor
(``load_state_dict(strict=True, assign=True)``), so the loaded model computes bit for bit what
the saved one did.

A model that cannot be described this way (a custom ``nn.Module``, a subclass of a listed
layer, a module used twice) raises :class:`~brain_ai.errors.ConversionError`: save its
``state_dict`` with :func:`save_weights` and rebuild it in code. :func:`save` checks its own
work: the description is rebuilt before writing, and a rebuilt model whose structure,
tensors or attributes differ from the original raises instead of writing a file that loads
differently.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConfigError, ConversionError
from brain_ai.physics.surrogates import SURROGATE_CODES, SURROGATE_NAMES, Surrogate

__all__ = ["FORMAT", "LAYER_TYPES", "METADATA_KEY", "VERSION", "describe", "from_description",
           "load", "save", "save_weights"]

FORMAT = "brain_ai.model"
VERSION = 1
#: The safetensors header metadata key holding the JSON description.
METADATA_KEY = "brain_ai.model"
#: The metadata key :func:`save_weights` writes (weights only, no description).
WEIGHTS_KEY = "brain_ai.weights"

# ---------------------------------------------------------------- plain torch layers
_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
         "bias", "padding_mode")
_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_MAXPOOL = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_AVGPOOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
            "divisor_override")
_DROPOUT = ("p", "inplace")

#: type name -> (class, constructor arguments read back from the attributes of the same name;
#: ``bias`` as a flag) of the plain torch layers. Exact classes only.
TORCH_LAYERS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "Linear": (nn.Linear, ("in_features", "out_features", "bias")),
    "Conv1d": (nn.Conv1d, _CONV),
    "Conv2d": (nn.Conv2d, _CONV),
    "Conv3d": (nn.Conv3d, _CONV),
    "BatchNorm1d": (nn.BatchNorm1d, _BN),
    "BatchNorm2d": (nn.BatchNorm2d, _BN),
    "BatchNorm3d": (nn.BatchNorm3d, _BN),
    "LayerNorm": (nn.LayerNorm, ("normalized_shape", "eps", "elementwise_affine", "bias")),
    "GroupNorm": (nn.GroupNorm, ("num_groups", "num_channels", "eps", "affine")),
    "MaxPool1d": (nn.MaxPool1d, _MAXPOOL),
    "MaxPool2d": (nn.MaxPool2d, _MAXPOOL),
    "MaxPool3d": (nn.MaxPool3d, _MAXPOOL),
    "AvgPool1d": (nn.AvgPool1d, _AVGPOOL[:-1]),
    "AvgPool2d": (nn.AvgPool2d, _AVGPOOL),
    "AvgPool3d": (nn.AvgPool3d, _AVGPOOL),
    "AdaptiveAvgPool1d": (nn.AdaptiveAvgPool1d, ("output_size",)),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
    "AdaptiveAvgPool3d": (nn.AdaptiveAvgPool3d, ("output_size",)),
    "AdaptiveMaxPool1d": (nn.AdaptiveMaxPool1d, ("output_size", "return_indices")),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, ("output_size", "return_indices")),
    "AdaptiveMaxPool3d": (nn.AdaptiveMaxPool3d, ("output_size", "return_indices")),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "Unflatten": (nn.Unflatten, ("dim", "unflattened_size")),
    "Dropout": (nn.Dropout, _DROPOUT),
    "Dropout1d": (nn.Dropout1d, _DROPOUT),
    "Dropout2d": (nn.Dropout2d, _DROPOUT),
    "Dropout3d": (nn.Dropout3d, _DROPOUT),
    "AlphaDropout": (nn.AlphaDropout, _DROPOUT),
    "Identity": (nn.Identity, ()),
    "ReLU": (nn.ReLU, ("inplace",)),
    "ReLU6": (nn.ReLU6, ("inplace",)),
    "SiLU": (nn.SiLU, ("inplace",)),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope", "inplace")),
    "ELU": (nn.ELU, ("alpha", "inplace")),
    "GELU": (nn.GELU, ("approximate",)),
    "Sigmoid": (nn.Sigmoid, ()),
    "Tanh": (nn.Tanh, ()),
    "Softmax": (nn.Softmax, ("dim",)),
    "LogSoftmax": (nn.LogSoftmax, ("dim",)),
}


def _torch_args(m: nn.Module, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: (getattr(m, "bias", None) is not None if n == "bias" else getattr(m, n))
            for n in names}


# ---------------------------------------------------------------- brain_ai neurons
def _ref(m: nn.Module, name: str) -> dict[str, str] | None:
    """``{"tensor": name}`` when ``m`` holds a tensor ``name`` (parameter or buffer)."""
    return {"tensor": name} if isinstance(getattr(m, name, None), Tensor) else None


def _learns(m: nn.Module, name: str) -> bool:
    return isinstance(getattr(m, name, None), nn.Parameter)


def _surrogate(where: str, s: Surrogate) -> dict[str, Any]:
    if type(s) not in SURROGATE_CODES:
        raise ConversionError(where, "a user-defined surrogate cannot be described",
                              got=type(s).__name__,
                              expected=" | ".join(c.__name__ for c in SURROGATE_CODES),
                              hint="save the weights with save_weights() and rebuild the "
                                   "model in code")
    return {"type": s.name, "args": {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}}


def _base_args(m: SpikingNeuronBase, where: str) -> dict[str, Any]:
    """The :class:`SpikingNeuronBase` constructor arguments of ``m`` (tensors by reference)."""
    args: dict[str, Any] = dict(
        features=m.features, charge=m.charge, threshold=_ref(m, "threshold"),
        v_reset=m.v_reset, reset=m.reset, reset_timing=m.reset_timing,
        comparator=m.comparator, surrogate=_surrogate(where, m.surrogate),
        detach_reset=m.detach_reset, beta_param=m.beta_param, beta_clamp=m.beta_clamp,
        learn_threshold=_learns(m, "threshold"),
        graded_spikes_factor=_ref(m, "graded_spikes_factor") or 1.0,
        learn_graded_spikes_factor=_learns(m, "graded_spikes_factor"),
        alpha=_ref(m, "alpha"), learn_alpha=_learns(m, "alpha"),
        input_gain=_ref(m, "input_gain"), refractory_steps=m.refractory_steps,
        dtype_policy=m.dtype_policy, chunk_size=m.chunk_size, backend=m.backend,
        kernel=m.kernel)
    if m.charge == "beta":
        name = "beta_logit" if m.beta_param == "sigmoid" else "beta"
        args.update(beta=_ref(m, name), learn_beta=_learns(m, name), tau=None)
    else:
        name = "w" if m.charge in ("rate", "rate_input") else "tau"
        args.update(beta=None, tau=_ref(m, name), learn_tau=_learns(m, name))
    return args


def _adaptive_args(m: AdaptiveLIFNeuron, where: str) -> dict[str, Any]:
    return dict(_base_args(m, where), adapt_scale=_ref(m, "adapt_scale"),
                adapt_decay=_ref(m, "adapt_decay"),
                learn_adaptation=_learns(m, "adapt_scale"))


def _recurrent_args(m: RecurrentLIFNeuron, where: str) -> dict[str, Any]:
    args = _base_args(m, where)
    kind = m.recurrent_kind
    rec = m.recurrent
    args.update(recurrent=kind, in_features=(None if m.input_proj is None
                                             else m.input_proj.in_features))
    if kind == "one_to_one":
        args.update(V={"tensor": "recurrent.V"}, learn_recurrent=_learns(rec, "V"))
    else:
        args.update(bias=rec.bias is not None,
                    learn_recurrent=all(p.requires_grad for p in rec.parameters()))
        if kind == "conv2d":
            args.update(kernel_size=rec.kernel_size[0],
                        features=m.features or rec.in_channels)
    return args


def _advanced_args(m: AdvancedLIFNeuron, where: str) -> dict[str, Any]:
    args = _adaptive_args(m, where)
    for fixed in ("beta", "tau", "charge", "learn_beta", "learn_tau", "beta_param"):
        args.pop(fixed, None)
    args.update(max_delay=m.max_delay, learn_delays=_learns(m, "delays"),
                learn_tau=_learns(m, "log_tau"))
    return args


#: type name -> (class, describer) of the brain_ai neurons: exact classes only.
NEURONS: dict[str, tuple[type[SpikingNeuronBase], Callable[[Any, str], dict[str, Any]]]] = {
    "LIFNeuron": (LIFNeuron, _base_args),
    "AdaptiveLIFNeuron": (AdaptiveLIFNeuron, _adaptive_args),
    "RecurrentLIFNeuron": (RecurrentLIFNeuron, _recurrent_args),
    "AdvancedLIFNeuron": (AdvancedLIFNeuron, _advanced_args),
}
CONTAINERS: dict[str, type[nn.Sequential]] = {"Sequential": nn.Sequential,
                                              "SpikingSequential": SpikingSequential}
#: Every type name a description may use.
LAYER_TYPES = frozenset(TORCH_LAYERS) | frozenset(NEURONS) | frozenset(CONTAINERS)

#: A valid value for each tensor argument of a neuron constructor, used as a placeholder of
#: the saved tensor's shape (the saved values replace it). ``beta`` is the middle of its clamp.
_PLACEHOLDER = {"tau": 2.0, "threshold": 1.0, "graded_spikes_factor": 2.0, "alpha": 0.5,
                "input_gain": 1.0, "adapt_scale": 0.1, "adapt_decay": 0.5, "V": 1.0}


# ---------------------------------------------------------------- describe
def _json_value(where: str, value: Any) -> Any:
    """``value`` as JSON (tuples as lists); anything else is refused."""
    if isinstance(value, (tuple, list)):
        return [_json_value(where, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(where, v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ConversionError(where, "a non-finite constructor argument", got=value,
                              expected="a finite number", hint="fix the layer's option")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConversionError(where, "a constructor argument is not a plain value",
                          got=type(value).__name__, expected="int | float | bool | str | list",
                          hint="save the weights with save_weights() and rebuild in code")


def _describe(m: nn.Module, path: str, seen: set[int]) -> dict[str, Any]:
    where = f"brain_ai.save ({path or 'model'})"
    if id(m) in seen:
        raise ConversionError(where, "a module appears twice in the model (shared weights)",
                              got=type(m).__name__, expected="each module once",
                              hint="save the weights with save_weights() and rebuild the "
                                   "model in code")
    seen.add(id(m))
    name = type(m).__name__
    node: dict[str, Any] = {"type": name}
    if name in CONTAINERS and type(m) is CONTAINERS[name]:
        node["args"] = ({"fold_time": m.fold_time, "chunk_size": m.chunk_size}
                        if isinstance(m, SpikingSequential) else {})
        node["children"] = [[child, _describe(sub, f"{path}.{child}" if path else child, seen)]
                            for child, sub in m._modules.items()
                            if sub is not None]
    elif name in NEURONS and type(m) is NEURONS[name][0]:
        node["args"] = NEURONS[name][1](m, where)
    elif name in TORCH_LAYERS and type(m) is TORCH_LAYERS[name][0]:
        node["args"] = _torch_args(m, TORCH_LAYERS[name][1])
    else:
        raise ConversionError(where, f"{type(m).__module__}.{name} is not a layer this format "
                              "describes", got=name,
                              expected="nn.Sequential / SpikingSequential of brain_ai neurons "
                                       "and plain torch layers (Linear, Conv, pools, norms, "
                                       "Flatten, Dropout, activations)",
                              hint="save the weights with save_weights() and rebuild the model "
                                   "in code (factory, migrate, load_state_dict)")
    node["args"] = _json_value(where, node["args"])
    node["training"] = m.training
    return node


def describe(model: nn.Module) -> dict[str, Any]:
    """The JSON description of ``model`` (see the module docstring).

    Raises:
        ConversionError: a module outside :data:`LAYER_TYPES` (or a subclass of one), a
            user-defined surrogate, a module used twice, tensors sharing memory.
    """
    if not isinstance(model, nn.Module):
        raise ConversionError("brain_ai.save", "only an nn.Module can be saved",
                              got=type(model).__name__, expected="nn.Module",
                              hint="pass the model (its weights go into the file)")
    tree = _describe(model, "", set())
    storages: dict[tuple[int, int], str] = {}
    for key, t in model.state_dict().items():
        if t.numel() == 0:
            continue
        where = (t.untyped_storage().data_ptr(), t.storage_offset())
        if where in storages:
            raise ConversionError("brain_ai.save", "two tensors share memory",
                                  got=f"{storages[where]} and {key}", expected="separate tensors",
                                  hint="save the weights with save_weights() (which keeps "
                                       "shared tensors once) and rebuild the model in code")
        storages[where] = key
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    return {"format": FORMAT, "version": VERSION, "model": tree, "frozen": frozen}


# ---------------------------------------------------------------- build
def _bad(what: str, got: object, expected: object, hint: str = "the file was not written by "
         "brain_ai.save, or was edited; save the model again") -> ConfigError:
    return ConfigError("brain_ai.load", what, got=got, expected=expected, hint=hint)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _check_args(name: str, args: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise _bad(f"{name}: args must be an object", got=type(args).__name__,
                   expected="a JSON object")
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise _bad(f"{name}: unknown constructor arguments", got=unknown,
                   expected=sorted(allowed))
    return args


def _neuron(name: str, args: dict[str, Any], prefix: str, state: Mapping[str, Tensor]
            ) -> nn.Module:
    cls = NEURONS[name][0]
    kwargs: dict[str, Any] = {}
    clamp = args.get("beta_clamp", (0.0, 0.999))
    for key, value in args.items():
        if isinstance(value, dict) and set(value) == {"tensor"}:
            ref = f"{prefix}{value['tensor']}"
            if ref not in state:
                raise _bad(f"{name}: argument {key} names a tensor the file lacks",
                           got=repr(ref), expected="a key of the file's tensors")
            saved = state[ref]
            fill = ((float(clamp[0]) + float(clamp[1])) / 2 if key == "beta"
                    else _PLACEHOLDER.get(key))
            if fill is None:
                raise _bad(f"{name}: argument {key} cannot be a tensor", got=value,
                           expected="a plain value")
            kwargs[key] = torch.full(saved.shape, fill, dtype=saved.dtype)
        elif key == "surrogate":
            kwargs[key] = _surrogate_from(value)
        else:
            kwargs[key] = _tuples(value)
    return cls(**kwargs)


def _surrogate_from(value: Any) -> Surrogate:
    if not isinstance(value, dict) or set(value) != {"type", "args"}:
        raise _bad("a surrogate must be {\"type\": name, \"args\": {...}}", got=value,
                   expected="e.g. {\"type\": \"atan\", \"args\": {\"alpha\": 2.0}}")
    cls = SURROGATE_NAMES.get(value["type"]) if isinstance(value["type"], str) else None
    if cls is None:
        raise _bad("unknown surrogate type", got=repr(value["type"]),
                   expected=" | ".join(SURROGATE_NAMES))
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**_check_args(cls.__name__, value["args"], names))


def _build(node: Any, prefix: str, state: Mapping[str, Tensor]) -> nn.Module:
    try:
        return _build_layer(node, prefix, state)
    except ConfigError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # a constructor refused the arguments
        name = node.get("type") if isinstance(node, dict) else None
        raise _bad(f"{name}: the arguments do not build the layer ({prefix or 'model'})",
                   got=" ".join(str(exc).split())[:200], expected="valid constructor arguments"
                   ) from exc


def _build_layer(node: Any, prefix: str, state: Mapping[str, Tensor]) -> nn.Module:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise _bad("a layer must be an object with a string \"type\"", got=repr(node)[:80],
                   expected="{\"type\": ..., \"args\": {...}}")
    name = node["type"]
    if name not in LAYER_TYPES:  # never imported: only the names of the table exist
        raise _bad("unknown layer type", got=repr(name),
                   expected="one of brain_ai.core.serialization.LAYER_TYPES",
                   hint="only known layers are rebuilt; nothing named in the file is imported")
    args = node.get("args", {})
    if name in CONTAINERS:
        _check_args(name, args, {"fold_time", "chunk_size"} if name == "SpikingSequential"
                    else set())
        children = node.get("children", [])
        if not isinstance(children, list) or not all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in children):
            raise _bad(f"{name}: children must be [name, layer] pairs", got=repr(children)[:80],
                       expected="[[\"0\", {...}], ...]")
        layers = {child: _build(sub, f"{prefix}{child}.", state) for child, sub in children}
        if len(layers) != len(children):
            raise _bad(f"{name}: two children share a name", got=[c[0] for c in children],
                       expected="unique names")
        module: nn.Module = CONTAINERS[name](OrderedDict(layers), **args)
    elif name in NEURONS:
        cls = NEURONS[name][0]
        allowed = {p for c in cls.__mro__ if issubclass(c, SpikingNeuronBase)
                   for p in inspect.signature(c.__init__).parameters} - {"self", "kwargs"}
        module = _neuron(name, _check_args(name, args, allowed), prefix, state)
    else:
        cls, names = TORCH_LAYERS[name]
        module = cls(**{k: _tuples(v) for k, v in _check_args(name, args, set(names)).items()})
    training = node.get("training", True)
    if not isinstance(training, bool):
        raise _bad(f"{name}: training must be true or false", got=repr(training),
                   expected="a boolean")
    module.training = training
    return module


def from_description(description: Mapping[str, Any], state: Mapping[str, Tensor]
                     ) -> nn.Module:
    """Rebuild the model :func:`describe` described, with the tensors ``state`` (by
    ``state_dict`` key). Only the types of :data:`LAYER_TYPES` are built.

    Raises:
        ConfigError: an unknown format, type or argument, or tensors that do not fit.
    """
    if not isinstance(description, Mapping) or description.get("format") != FORMAT:
        raise _bad("not a brain_ai model description",
                   got=repr(description.get("format") if isinstance(description, Mapping)
                            else type(description).__name__),
                   expected=repr(FORMAT))
    if description.get("version") != VERSION:
        raise _bad("unsupported description version", got=description.get("version"),
                   expected=VERSION, hint="load it with the brain_ai version that saved it")
    model = _build(description.get("model"), "", state)
    try:
        model.load_state_dict(dict(state), strict=True, assign=True)
    except RuntimeError as exc:
        raise _bad("the tensors do not fit the described model",
                   got=str(exc).splitlines()[-1].strip()[:200], expected="matching tensors"
                   ) from exc
    frozen = description.get("frozen", [])
    if not isinstance(frozen, list):
        raise _bad("frozen must be a list of parameter names", got=repr(frozen)[:80],
                   expected="a list")
    for pname, p in model.named_parameters():
        p.requires_grad_(pname not in frozen)
    return model


# ---------------------------------------------------------------- compare (save's self-check)
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and bool(torch.equal(a.detach().cpu(), b.detach().cpu())))
    return type(a) is type(b) and a == b


def _differences(a: nn.Module, b: nn.Module) -> list[str]:
    """What differs between ``a`` and its rebuilt copy ``b`` (empty: nothing)."""
    out = []
    mods_a, mods_b = dict(a.named_modules()), dict(b.named_modules())
    if list(mods_a) != list(mods_b):
        return [f"modules {sorted(set(mods_a) ^ set(mods_b))}"]
    for name, ma in mods_a.items():
        mb = mods_b[name]
        if type(ma) is not type(mb) or ma.training != mb.training:
            out.append(f"{name or 'model'}: type or training mode")
        for kind in ("_parameters", "_buffers"):
            ta, tb = getattr(ma, kind), getattr(mb, kind)
            if set(ta) != set(tb):
                out.append(f"{name}: {kind[1:]} {sorted(set(ta) ^ set(tb))}")
                continue
            for key in ta:
                if not _same(ta[key], tb[key]) or (
                        ta[key] is not None and ta[key].requires_grad != tb[key].requires_grad):
                    out.append(f"{name}.{key}")
        public_a = {k: v for k, v in vars(ma).items() if not k.startswith("_")}
        public_b = {k: v for k, v in vars(mb).items() if not k.startswith("_")}
        if set(public_a) != set(public_b):
            out.append(f"{name}: attributes {sorted(set(public_a) ^ set(public_b))}")
        out += [f"{name}.{k}" for k in public_a if k in public_b
                and not _same(public_a[k], public_b[k])]
    return out


# ---------------------------------------------------------------- files
def _tensors(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save(model: nn.Module, path: str | Path) -> None:
    """Write ``model`` to ``path`` (a ``.safetensors`` file): its tensors and its description.

    Load it back with :func:`load` (``brain_ai.load``); no pickle is involved either way.

    Raises:
        ConversionError: the model cannot be described (see :func:`describe`), or the rebuilt
            model would differ from ``model`` (named in the message).
    """
    from safetensors.torch import save_file

    description = describe(model)
    tensors = _tensors(model)
    rebuilt = from_description(description, tensors)
    diff = _differences(model, rebuilt)
    if diff:
        raise ConversionError("brain_ai.save", "the description does not rebuild the model "
                              "exactly", got=", ".join(diff[:5]), expected="no differences",
                              hint="save the weights with save_weights() and rebuild the model "
                                   "in code")
    text = json.dumps(description, allow_nan=False, separators=(",", ":"))
    save_file(tensors, str(path), metadata={METADATA_KEY: text})


def save_weights(model: nn.Module, path: str | Path, note: str = "") -> None:
    """Write only ``model.state_dict()`` to ``path`` (safetensors; shared tensors once).

    For models :func:`save` cannot describe; rebuild with
    ``safetensors.torch.load_model(model, path)`` on a freshly built model. ``note`` (e.g. how
    to rebuild) is kept in the file's metadata.
    """
    from safetensors.torch import save_model

    save_model(model, str(path), metadata={WEIGHTS_KEY: note or "state_dict"})


def load(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The model :func:`save` wrote to ``path``, on ``device``.

    Nothing in the file is executed: the layers are built from the fixed table
    :data:`LAYER_TYPES`, the tensors read by safetensors.

    Raises:
        ConfigError: no such file, not a safetensors file, a weights-only file (from
            :func:`save_weights`), or a description naming an unknown type or argument.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise ConfigError("brain_ai.load", "no such file", got=str(p),
                          expected="a .safetensors file written by brain_ai.save",
                          hint="check the path")
    try:
        with safe_open(str(p), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError("brain_ai.load", "not a safetensors file", got=f"{p}: {exc}",
                          expected="a file written by brain_ai.save",
                          hint="a torch.save checkpoint loads with torch.load(path, "
                               "weights_only=True)") from exc
    if METADATA_KEY not in meta:
        note = meta.get(WEIGHTS_KEY)
        raise ConfigError("brain_ai.load", "the file holds weights only, no model description",
                          got=str(p), expected=f"metadata key {METADATA_KEY!r}",
                          hint="build the model in code, then load the weights: " + (
                              "; ".join(note.splitlines()) if note and note != "state_dict"
                              else "safetensors.torch.load_model(model, path)"))
    try:
        description = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise _bad("the model description is not valid JSON", got=str(exc),
                   expected="JSON") from exc
    return from_description(description, state)
