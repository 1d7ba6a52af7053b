"""The export's fit to SIZE_CAP, for train_byte_model.py (CAP_FIT=1, the default): imported, and its bytes counted,
only when the configured export comes out over the cap.

The ladder, finest first: QUANT_CLIP=std:K for K on CAP_FIT_CLIPS (2.5 to 32 in steps of 2^(1/16); below about 3
as fine as the max clip of a 1,024-wide Gaussian row, above it coarser) above a configured std:K, then EMBED_BITS 7
and 6 at the coarsest clip. Bytes fall along it (a wider clip is a coarser
step), so the search looks for the first setting that fits: rounds of ROUND_TRIES settings spread over the ranks
(rank r takes tries r, r + world, ...), each round's settings chosen from the earlier rounds' results only, so that
the settings tried, and the choice, do not depend on the number of ranks. Of the tried settings that fit, the fit
keeps the one with the smallest Hessian-weighted quantization error sum_t tr(E_t H_t E_t^T) (E_t the stored minus
the exported weights; the plain squared error where no Hessian was collected). It reuses the export's Hessians and
each group's codec as the configured export chose it, and reads no data, val least of all. Rank 0 writes the file.
"""

from __future__ import annotations

import copy
import time

import torch.distributed as dist
from torch import Tensor

from train_byte_model import (CAP_FIT_CLIPS, ByteGPT, Hyperparameters, Runtime, artifact_header, code_bytes,
                              full_fp32, quantize_state)

ROUND_TRIES = 8  # one round is one try per GPU on 8xH100


def ladder(args: Hyperparameters) -> list[tuple[str, int]]:
    """(QUANT_CLIP, EMBED_BITS) settings coarser than the configured one, finest first."""
    configured = float(args.quant_clip[4:]) if args.quant_clip.startswith("std:") else 0.0
    clips = [(f"std:{k:g}", args.embed_bits) for k in CAP_FIT_CLIPS if k > configured]
    coarsest = clips[-1][0] if clips else args.quant_clip
    return clips + [(coarsest, bits) for bits in (7, 6) if bits < args.embed_bits]


def next_round(lo: int, hi: int) -> list[int]:
    """Up to ROUND_TRIES ladder indices spread evenly over [lo, hi), where the first fitting setting lies."""
    if hi - lo <= ROUND_TRIES:
        return list(range(lo, hi))
    return sorted({lo + (hi - lo) * (j + 1) // (ROUND_TRIES + 1) for j in range(ROUND_TRIES)})


def weighted_error(state: dict[str, Tensor], quantized: list[tuple], hessians: dict[str, Tensor]) -> float:
    total = 0.0
    for name, _, values, scale in quantized:
        if scale is None or name not in state:  # fp16 tensors (and LQER's factors) are not on the ladder
            continue
        w = state[name].detach().float()
        with full_fp32(w.device.type):
            error = w - values.to(w.device).float() * scale.to(w.device).float()[:, None]
            h = hessians.get(name)
            total += float((error @ h.to(error) * error).sum() if h is not None else error.square().sum())
    return total


def configured_codecs(rt: Runtime, configured_blob: bytes) -> dict[str, tuple[str]]:
    """The codec each group of the configured export chose (rank 0's file, to every rank): the tries use only that
    one, since trying brotli on the matrices alone costs about a minute of one core at the full shape."""
    box = [None]
    if rt.master:
        box = [{g["name"]: (g["codec"],) for g in artifact_header(configured_blob)[0]["groups"]}]
    if rt.distributed:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def try_setting(setting: tuple[str, int], args: Hyperparameters, model: ByteGPT, hessians: dict, pack,
                codecs: dict) -> tuple[dict, bytes]:
    started, state = time.perf_counter(), model.state_dict()
    trial = copy.copy(args)
    trial.quant_clip, trial.embed_bits = setting
    quantized = quantize_state(state, trial, hessians)
    blob = pack(quantized, trial, codecs)
    return {"setting": f"QUANT_CLIP={setting[0]} EMBED_BITS={setting[1]}", "artifact_bytes": len(blob),
            "error": weighted_error(state, quantized, hessians), "ms": 1000 * (time.perf_counter() - started)}, blob


def fit(args: Hyperparameters, rt: Runtime, model: ByteGPT, hessians: dict, pack, configured_blob: bytes,
        configured_total: int) -> tuple[bytes, dict]:
    """(the file to write on rank 0, the fit's report); the configured file when nothing on the ladder fits."""
    started, settings, code = time.perf_counter(), ladder(args), code_bytes()  # code: this module counted too
    codecs = configured_codecs(rt, configured_blob)
    budget = args.size_cap - code
    configured = f"QUANT_CLIP={args.quant_clip} EMBED_BITS={args.embed_bits}"
    rt.log(f"cap_fit: configured {configured} gives {configured_total:,} bytes > SIZE_CAP {args.size_cap:,}; "
           f"trying {len(settings)} coarser settings, {ROUND_TRIES} at a time on {rt.world_size} rank(s)")
    tried, blobs, lo, hi, rounds = {}, {}, 0, len(settings), 0
    while lo < hi:
        indices, rounds = next_round(lo, hi), rounds + 1
        mine = {}
        for i in indices[rt.rank:: rt.world_size]:
            mine[i], blobs[i] = try_setting(settings[i], args, model, hessians, pack, codecs)
            mine[i]["rank"] = rt.rank
        gathered = [mine]
        if rt.distributed:
            gathered = [None] * rt.world_size
            dist.all_gather_object(gathered, mine)
        for results in gathered:
            tried.update(results)
        for i in indices:
            r = tried[i]
            r["fits"] = r["artifact_bytes"] <= budget
            rt.log(f"cap_fit_try: round {rounds} {r['setting']} artifact_bytes:{r['artifact_bytes']} total_bytes:"
                   f"{r['artifact_bytes'] + code} fits:{'yes' if r['fits'] else 'no'} error:{r['error']:.6g} "
                   f"ms:{r['ms']:.0f}")
        hi = min([i for i in indices if tried[i]["fits"]], default=hi)
        lo = max([i + 1 for i in indices if i < hi and not tried[i]["fits"]], default=lo)
    fitting = [i for i in sorted(tried) if tried[i]["fits"]]
    best = min(fitting, key=lambda i: tried[i]["error"]) if fitting else None  # ties: the finer setting
    report = {"configured": configured, "configured_total_bytes": configured_total, "size_cap": args.size_cap,
              "code_bytes": code, "chosen": tried[best]["setting"] if best is not None else None, "rounds": rounds,
              "tries": [tried[i] for i in sorted(tried)], "ms": 1000 * (time.perf_counter() - started)}
    rt.log(f"cap_fit: chose {report['chosen']} ({tried[best]['artifact_bytes'] + code:,} bytes)" if best is not None
           else f"cap_fit: nothing on the ladder fits SIZE_CAP {args.size_cap:,}; writing the configured export")
    return (chosen_blob(rt, blobs, best, tried[best]["rank"]) if best is not None else configured_blob), report


def chosen_blob(rt: Runtime, blobs: dict[int, bytes], best: int, holder: int) -> bytes:
    """The chosen file, on rank 0, from the rank that tried it."""
    if not rt.distributed:
        return blobs[best]
    box = [blobs[best] if rt.rank == holder else None]
    dist.broadcast_object_list(box, src=holder)
    return box[0] if rt.master else b""
