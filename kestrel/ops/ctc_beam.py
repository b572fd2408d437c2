"""CTC prefix beam search for `ops.ctc_decode(strategy="beam_search")`, batched.

Every beam is a label prefix with two scores (log space): ending in a label ("emit") and
ending in a blank. A step extends each prefix by every class: a blank keeps the prefix (blank
track); the prefix's own last label after an emit keeps it too (merged repeat); any other
label appends. Candidates that spell the same prefix are merged (log-sum-exp per track) and
the `beam_width` best prefixes by total score survive. All batch items advance together; an
item past its sequence length keeps its beams.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_PAD = -1


def _log_sum_by_group(values: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    """`log(sum(exp(values)))` for each of `count` groups; empty or all -inf groups give -inf."""
    peak = torch.full((count,), -torch.inf, dtype=values.dtype, device=values.device)
    peak = peak.scatter_reduce(0, groups, values, "amax")
    peak = torch.where(torch.isfinite(peak), peak, 0.0)
    total = torch.zeros_like(peak).index_add_(0, groups, torch.exp(values - peak[groups]))
    return torch.log(total) + peak


_HASH_BASE = 0x9E3779B97F4A7C15 - 2 ** 64  # odd 64-bit multiplier; int64 products wrap


def _unique_rows(keys: torch.Tensor):
    """`(unique rows, group of each row)` of a 2-d integer tensor, the unique rows ordered by
    their first column. Rows are grouped by a
    64-bit polynomial hash, checked exactly against each group's first row (a collision, never
    seen in practice, falls back to `torch.unique(dim=0)`)."""
    powers = torch.full((keys.shape[1],), _HASH_BASE, dtype=torch.long, device=keys.device)
    powers = torch.cumprod(powers, 0)
    hashes = ((keys + 2) * powers).sum(1)
    _, groups = torch.unique(hashes, return_inverse=True)
    count = int(groups.max()) + 1
    first = torch.full((count,), keys.shape[0], dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, groups, torch.arange(keys.shape[0], device=keys.device),
                                 "amin")
    unique = keys[first]
    if not torch.equal(unique[groups], keys):
        return torch.unique(keys, dim=0, return_inverse=True)
    order = torch.argsort(unique[:, 0], stable=True)  # grouped by the first column
    rank = torch.empty_like(order)
    rank[order] = torch.arange(count, device=keys.device)
    return unique[order], rank[groups]


def _merge(paths: torch.Tensor, tracks: list[torch.Tensor], keep: int):
    """Merge equal prefixes within each batch item and keep the `keep` best.

    Args:
        paths: `(batch, rows, time)` prefixes padded with -1.
        tracks: `(batch, rows)` log scores per track (-inf where a row is not on it).
        keep: how many prefixes to keep per item; missing ones are empty with score -inf.

    Returns `(paths (batch, keep, time), [track scores (batch, keep)])`.
    """
    batch, rows, length = paths.shape
    steps = max(int((paths != _PAD).sum(-1).max()), 1)  # the longest prefix: keys stop there
    item = torch.arange(batch, device=paths.device).repeat_interleave(rows)
    keys = torch.cat([item[:, None], paths[..., :steps].reshape(-1, steps)], 1)
    unique, groups = _unique_rows(keys)
    count = unique.shape[0]
    merged = [_log_sum_by_group(t.reshape(-1), groups, count) for t in tracks]
    owner = unique[:, 0]
    sizes = torch.bincount(owner, minlength=batch)
    local = torch.arange(count, device=paths.device) - (torch.cumsum(sizes, 0) - sizes)[owner]
    width = max(int(sizes.max()), keep)
    table = torch.full((batch, width, steps), _PAD, dtype=paths.dtype, device=paths.device)
    table[owner, local] = unique[:, 1:]
    scores = []
    for track in merged:
        spread = torch.full((batch, width), -torch.inf, dtype=track.dtype, device=track.device)
        spread[owner, local] = track
        scores.append(spread)
    total = scores[0] if len(scores) == 1 else torch.logaddexp(*scores)
    best = torch.sort(total, dim=1, descending=True, stable=True).indices[:, :keep]
    paths = table.gather(1, best[..., None].expand(-1, -1, steps))
    return F.pad(paths, (0, length - steps), value=_PAD), [s.gather(1, best) for s in scores]


def beam_search(log_probs: torch.Tensor, lengths: torch.Tensor, beam_width: int,
                top_paths: int, blank: int):
    """Decode `log_probs` `(batch, time, classes)` (log-softmaxed) with a prefix beam search.

    Returns `(paths (top_paths, batch, time) int32 padded with -1, scores (batch, top_paths))`,
    the scores being the log probabilities of the decoded label sequences, best first.
    """
    batch, steps, classes = log_probs.shape
    device = log_probs.device
    lengths = lengths.to(device=device, dtype=torch.long).clamp(max=steps)
    first = min(classes, beam_width)
    top_scores, top_classes = log_probs[:, 0].topk(first, dim=-1)
    paths = torch.full((batch, 2 * beam_width, steps), _PAD, dtype=torch.long, device=device)
    paths[:, :first, 0] = torch.where(top_classes == blank, _PAD, top_classes)
    scores = torch.full((batch, 2 * beam_width), -torch.inf, dtype=log_probs.dtype,
                        device=device)
    scores[:, :first] = top_scores
    on_blank = paths[..., 0] == _PAD
    label = torch.arange(classes, device=device).repeat(2 * beam_width)  # class per candidate
    is_blank = label == blank
    by_track = torch.arange(2 * beam_width, device=device) >= beam_width
    for t in range(1, int(lengths.max()) if batch else 0):
        size = (paths != _PAD).sum(-1, keepdim=True)  # (batch, beams, 1)
        tail = paths.gather(-1, (size - 1).clamp(min=0)).squeeze(-1)
        tail = torch.where(size.squeeze(-1) == 0, _PAD, tail)
        size, tail, was_blank = (v.repeat_interleave(classes, 1)
                                 for v in (size, tail, on_blank))
        repeat = ~was_blank & (tail == label)
        grown = paths.repeat_interleave(classes, 1)
        grown.scatter_(-1, size, torch.where(is_blank | repeat, _PAD, label)[..., None]
                       .expand(batch, -1, -1))
        step = scores.repeat_interleave(classes, 1) + log_probs[:, t].repeat(1, 2 * beam_width)
        emit = torch.where(is_blank, -torch.inf, step)
        blank_scores = torch.where(is_blank, step, -torch.inf)
        kept, (emit, blank_scores) = _merge(grown, [emit, blank_scores], beam_width)
        active = (t < lengths)[:, None]
        paths = torch.where(active[..., None], kept.repeat(1, 2, 1), paths)
        scores = torch.where(active, torch.cat([emit, blank_scores], 1), scores)
        on_blank = torch.where(active, by_track, on_blank)
    paths, (scores,) = _merge(paths, [scores], top_paths)
    return paths.to(torch.int32).transpose(0, 1), scores
