"""Migrate snnTorch tutorial models to brain_ai and print the verification reports.

    python examples/migrate_snntorch.py
"""

from __future__ import annotations

import torch

from brain_ai.adapters.snntorch import migrate
from brain_ai.adapters.verify import verify_migration
from brain_ai.conformance.models_snntorch import (
    sae_init_hidden,
    tutorial_conv,
    tutorial_leaky_unbatched,
    tutorial_mlp,
)


def main() -> bool:
    gen = torch.Generator().manual_seed(0)
    cases = [
        ("tutorial 5: MLP with a hand-written loop", tutorial_mlp(),
         torch.rand(100, 8, 784, generator=gen)),
        ("tutorial 7: conv, init_hidden Sequential", tutorial_conv(),
         (torch.rand(25, 4, 1, 28, 28, generator=gen) > 0.6).float() * 2),
        ("tutorial 3: one Leaky, 0-d current per step", tutorial_leaky_unbatched(),
         torch.rand(60, generator=gen) * 0.5),
        ("autoencoder: init_hidden neurons inside a custom module", sae_init_hidden(),
         torch.rand(2, 1, 8, 8, generator=gen) * 3),
    ]
    ok = True
    for title, model, x in cases:
        migrated = migrate(model)
        report = verify_migration(model, migrated, x)
        print(f"== {title}\n{report}\n")
        ok = ok and report.equivalent  # UNTESTED (a layer never spiked) is no failure
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
