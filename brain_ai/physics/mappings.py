r"""Parameter mappings between conventions (β ↔ τ ↔ dt): the one place they are written.

* exact (zero-order hold) decay:  ``β = exp(-dt/τ)``,  ``τ = -dt / ln β``
* forward-Euler decay (snnTorch/NIR export, SpikingJelly ``1/τ``): ``β = 1 - dt/τ``,
  ``τ = dt / (1 - β)``
* SpikingJelly ``ParametricLIFNode``: ``1/τ = sigmoid(w)``, ``w = -ln(τ - 1)``

Conversions are computed in float64 and returned as float32 tensors (or floats for float input).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "beta_from_tau_euler",
    "beta_from_tau_exact",
    "plif_w_from_tau",
    "tau_from_beta_euler",
    "tau_from_beta_exact",
    "tau_from_plif_w",
]


def _as64(x: float | Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def _out(x: Tensor, like: float | Tensor) -> float | Tensor:
    return float(x) if not isinstance(like, Tensor) else x.to(torch.float32)


def beta_from_tau_exact(tau: float | Tensor, dt: float = 1.0) -> float | Tensor:
    return _out(torch.exp(-dt / _as64(tau)), tau)


def tau_from_beta_exact(beta: float | Tensor, dt: float = 1.0) -> float | Tensor:
    return _out(-dt / torch.log(_as64(beta)), beta)


def beta_from_tau_euler(tau: float | Tensor, dt: float = 1.0) -> float | Tensor:
    return _out(1.0 - dt / _as64(tau), tau)


def tau_from_beta_euler(beta: float | Tensor, dt: float = 1.0) -> float | Tensor:
    return _out(dt / (1.0 - _as64(beta)), beta)


def plif_w_from_tau(tau: float | Tensor) -> float | Tensor:
    """SpikingJelly's ``ParametricLIFNode`` initial ``w`` for ``init_tau`` (``-ln(τ - 1)``).

    A float is computed as SpikingJelly does (``math.log``, bit for bit); a tensor in float64.
    ``τ = 1`` gives ``w = +inf`` (``1/τ = sigmoid(w) = 1``: no memory).
    """
    if isinstance(tau, Tensor):
        return _out(-torch.log(_as64(tau) - 1.0), tau)
    return math.inf if tau == 1.0 else -math.log(tau - 1.0)


def tau_from_plif_w(w: float | Tensor) -> float | Tensor:
    return _out(1.0 / torch.sigmoid(_as64(w)), w)
