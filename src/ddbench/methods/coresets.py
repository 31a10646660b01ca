"""Coreset baselines: random, herding, k-center, EL2N and forgetting."""

from __future__ import annotations

import numpy as np

from ddbench.methods.base import CondensedSet, Context, Method, register_method, select_indices
from ddbench.methods.selection import herding_order, kcenter_order, rank_by_score
from ddbench.stages.scores import (
    as_dynamics,
    cad_at_budget,
    el2n_score,
    el2n_soft_score,
    forgetting_score,
)

_FEATURES = {"type": "string", "description": "teacher whose penultimate features are used"}
_SCORER = {"type": "string", "description": "dynamics scorer (config `scorers`)"}


@register_method("random")
class RandomSelection(Method):
    """Class-balanced uniform sample of the training split."""

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        rng = np.random.default_rng(seed)
        orders = [rng.permutation(idx) for idx in ctx.data.class_indices()]
        return select_indices(ctx.data, orders, ipc, self)


@register_method("herding")
class Herding(Method):
    """Greedy herding in teacher feature space: selected mean tracks the class mean."""

    requires = frozenset({"features"})
    param_schema = {
        "type": "object",
        "properties": {"features": _FEATURES},
        "required": ["features"],
        "additionalProperties": False,
    }

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        orders = [idx[herding_order(ctx.features[idx], ipc)] for idx in ctx.data.class_indices()]
        return select_indices(ctx.data, orders, ipc, self)


@register_method("kcenter")
class KCenter(Method):
    """Greedy k-center (farthest point) per class in teacher feature space; seed picks the start."""

    requires = frozenset({"features"})
    param_schema = Herding.param_schema

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        rng = np.random.default_rng(seed)
        orders = []
        for idx in ctx.data.class_indices():
            first = int(rng.integers(len(idx)))
            orders.append(idx[kcenter_order(ctx.features[idx], ipc, first)])
        return select_indices(ctx.data, orders, ipc, self)


_KEEP = {"type": "string", "enum": ["easy", "hard", "band"]}
CAD_BUDGET = {
    "type": ["number", "null"],
    "exclusiveMinimum": 0,
    "default": None,
    "description": "K: downstream budget in full-set epochs, may be fractional (null = recorded epochs)",
}
_BAND = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "maximum": 1},
    "minItems": 2,
    "maxItems": 2,
    "description": "quantile window [lo, hi] of the class's ascending scores, for keep: band",
}


class _ScoreRanking(Method):
    """Shared parameter checks of the score-ranking methods."""

    def check_params(self) -> None:
        band = self.params.get("band")
        if band is not None and not band[0] <= band[1]:
            raise ValueError(f"band: lower quantile {band[0]} exceeds upper {band[1]}")
        if self.params.get("keep") == "band" and band is None:
            raise ValueError("band: keep: band needs band: [lo, hi]")


@register_method("el2n")
class EL2N(_ScoreRanking):
    """EL2N scores at an early proxy epoch; keep the easiest, hardest or a quantile band per class."""

    requires = frozenset({"scores"})
    param_schema = {
        "type": "object",
        "properties": {
            "scorer": _SCORER,
            "epoch": {"type": "integer", "minimum": 0, "description": "0-based proxy epoch"},
            "keep": _KEEP,
            "band": _BAND,
            "target": {
                "type": "string",
                "enum": ["onehot", "teacher"],
                "default": "onehot",
                "description": "onehot = EL2N; teacher = EL2N-SL, distance to the teacher's soft label",
            },
            "features": {
                "type": "string",
                "description": "teacher giving the soft labels (target: teacher)",
            },
        },
        "required": ["scorer", "epoch", "keep"],
        "additionalProperties": False,
    }

    def input_names(self) -> dict[str, str]:
        names = super().input_names()
        if self.params.get("target") == "teacher":
            names["features"] = self.params["features"]
        return names

    def check_params(self) -> None:
        super().check_params()
        if self.params.get("target") == "teacher" and "features" not in self.params:
            raise ValueError("features: target: teacher (EL2N-SL) names the teacher in `features`")

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        epoch = int(self.params["epoch"])
        dyn = as_dynamics(ctx.scores)
        if self.params.get("target") == "teacher":
            from ddbench.stages.features import load_features

            if dyn.probs is None:
                raise ValueError(
                    f"EL2N-SL (target: teacher) needs the proxies' full softmax, but scorer "
                    f"{self.params['scorer']!r} stored compact dynamics; set "
                    f"scorers.{self.params['scorer']}.store: full and rerun it"
                )

            logits = load_features(
                ctx.extras["features_path"], len(ctx.data.train_labels), "logits"
            )
            z = logits - logits.max(axis=1, keepdims=True)
            soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            s = el2n_soft_score(dyn, soft.astype(np.float32), epoch)
        else:
            s = el2n_score(dyn, epoch)
        return _rank_select(ctx, s, ipc, seed, self)


@register_method("forgetting")
class Forgetting(_ScoreRanking):
    """Forgetting-event counts; never-learned samples count as most forgotten."""

    requires = frozenset({"scores"})
    param_schema = {
        "type": "object",
        "properties": {"scorer": _SCORER, "keep": _KEEP, "band": _BAND},
        "required": ["scorer"],
        "additionalProperties": False,
    }

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        s = forgetting_score(as_dynamics(ctx.scores))
        return _rank_select(ctx, s, ipc, seed, self, default_keep="hard")


@register_method("cad_prune")
class CADPrune(_ScoreRanking):
    """CAD-Prune: rank by compute-aware difficulty at the downstream budget K (full-set epochs).

    Defaults: J = 3 record points for the spread of p(y|x) (short enough to localise learning
    in time), W = 3 windows averaged (smooths point-to-point noise), K = the recorded proxy
    epochs (the proxy budget stands in for the downstream one unless `budget` is set), keep
    `hard` = the samples still being learned at that budget. K may be fractional; it maps to
    the last record point at or before K epochs (ddbench.stages.scores.cad_score).
    """

    requires = frozenset({"scores"})
    param_schema = {
        "type": "object",
        "properties": {
            "scorer": _SCORER,
            "budget": CAD_BUDGET,
            "window_j": {"type": "integer", "minimum": 2, "default": 3},
            "window_w": {"type": "integer", "minimum": 1, "default": 3},
            "keep": {**_KEEP, "default": "hard"},
            "band": _BAND,
        },
        "required": ["scorer"],
        "additionalProperties": False,
    }

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        s = cad_at_budget(as_dynamics(ctx.scores), self.params)
        return _rank_select(ctx, s, ipc, seed, self, default_keep="hard")


def _rank_select(
    ctx: Context,
    scores: np.ndarray,
    ipc: int,
    seed: int,
    method: Method,
    default_keep: str = "easy",
) -> CondensedSet:
    rng = np.random.default_rng(seed)
    keep = method.params.get("keep", default_keep)
    band = tuple(method.params["band"]) if "band" in method.params else None
    orders = [idx[rank_by_score(scores[idx], keep, rng, band)] for idx in ctx.data.class_indices()]
    return select_indices(ctx.data, orders, ipc, method)
