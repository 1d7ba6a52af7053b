"""Export research options for train_byte_model.py, off by default and used by no recipe: LQER_RANK, a
low-rank int4 correction of each int6 matrix's quantization error (LQER, Zhang et al., 2024). The trainer
imports this module only when LQER_RANK > 0, and a run that uses it counts this file's bytes. The
artifact stores the factors as ordinary int4 tensors NAME.lqer_a (A^T, rank x rows) and NAME.lqer_b
(rank x columns); the trainer's decoder calls fold_corrections to add A^T B to NAME.
docs/export.md says what it bought.
"""

from __future__ import annotations

import torch
from torch import Tensor

from train_byte_model import QUANT_LEVELS, Hyperparameters, damped, quantize_rows


def low_rank_correction(name: str, w: Tensor, dequantized: Tensor, hessian: Tensor | None,
                        args: Hyperparameters) -> list[tuple]:
    """Factors of the error E = W - Q(W) that minimize ||(E - A B) X^T|| for the calibration inputs X:
    with H = X^T X = L L^T, the truncated SVD of E L gives A B = U S V^T L^-1 (without a Hessian, L = I).
    Each factor is int4 with a per-row step, its rows the long side."""
    err = (w.detach().double() - dequantized.double().to(w.device))
    chol = torch.linalg.cholesky(damped(hessian.double().to(w.device), args.gptq_damp)) if hessian is not None else None
    u, s, vh = torch.linalg.svd(err @ chol if chol is not None else err, full_matrices=False)
    root = s[: args.lqer_rank].sqrt()
    a_t, b = root[:, None] * u[:, : args.lqer_rank].T, root[:, None] * vh[: args.lqer_rank]
    if chol is not None:  # B L^-1, as the solution of Y L = B
        b = torch.linalg.solve_triangular(chol, b, upper=False, left=False)
    return [(f"{name}.{suffix}", "int4", *quantize_rows(factor, QUANT_LEVELS["int4"]))
            for suffix, factor in (("lqer_a", a_t), ("lqer_b", b))]


def fold_corrections(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A decoded state with each NAME.lqer_a / NAME.lqer_b pair added back into NAME: W + A^T B."""
    for name in [n for n in state if n.endswith(".lqer_a")]:
        base = name.removesuffix(".lqer_a")
        state[base] = state[base] + state.pop(name).T @ state.pop(base + ".lqer_b")
    return state
