"""Patch selection: RDED (realistic crops, easiest first) and CA2D (crops ranked by CAD)."""

from __future__ import annotations

import numpy as np

from ddbench.methods.base import CondensedSet, Context, Method, register_method
from ddbench.methods.coresets import CAD_BUDGET

_FACTOR = {
    "type": "integer",
    "minimum": 1,
    "default": 2,
    "description": "mosaic side: factor² crops per image (1 = single crops)",
}


def _crop_order(cs: dict, class_rows: np.ndarray, image_rank: np.ndarray) -> list[tuple[int, int]]:
    """(row, crop) pairs: each image's best crop in `image_rank` order, then the rest by score."""
    scores = cs["scores"][class_rows]
    best = scores.argmin(axis=1)
    first = [(int(class_rows[r]), int(best[r])) for r in image_rank]
    rest = [
        (int(class_rows[r]), j)
        for r in range(len(class_rows))
        for j in range(scores.shape[1])
        if j != best[r]
    ]
    rest.sort(key=lambda rc: float(cs["scores"][rc[0], rc[1]]))
    return first + rest


class _PatchMethod(Method):
    requires = frozenset({"crops"})

    def _image_rank(
        self, ctx: Context, cs: dict, rows: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        raise NotImplementedError

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        from ddbench.stages.crops import assemble_mosaics, load_crop_scores

        data = ctx.data
        factor = int(self.params.get("factor", 2))
        cs = load_crop_scores(ctx.extras["crops_path"], len(data.train_labels))
        labels_of_rows = data.train_labels[cs["image_indices"]]
        rng = np.random.default_rng(seed)
        need = ipc * factor * factor
        picks = []
        for c in range(data.num_classes):
            rows = np.flatnonzero(labels_of_rows == c)
            order = _crop_order(cs, rows, self._image_rank(ctx, cs, rows, rng))
            if len(order) < need:
                raise ValueError(
                    f"class {data.classes[c]!r} has {len(order)} scored crops, fewer than IPC×factor² = {need}"
                )
            picks += [(int(cs["image_indices"][r]), cs["boxes"][r, j]) for r, j in order[:need]]
        images = assemble_mosaics(
            data.train_float_subset([i for i, _ in picks]),
            [(k, b) for k, (_, b) in enumerate(picks)],
            factor,
            data.image_size,
        )
        return CondensedSet(
            images=images,
            labels=np.repeat(np.arange(data.num_classes), ipc).astype(np.int64),
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
        )


@register_method("rded")
class RDED(_PatchMethod):
    """RDED: the teacher's most realistic crops (lowest cross-entropy) per class, as factor×factor mosaics."""

    param_schema = {
        "type": "object",
        "properties": {
            "crops": {"type": "string", "description": "crop scorer (scorers.<name>, kind crops)"},
            "factor": _FACTOR,
        },
        "required": ["crops"],
        "additionalProperties": False,
    }

    def _image_rank(self, ctx, cs, rows, rng):
        best = cs["scores"][rows].min(axis=1)
        return np.lexsort((rng.permutation(len(rows)), best))


@register_method("ca2d")
class CA2D(_PatchMethod):
    """CA2D: RDED's crops, but source images ranked by compute-aware difficulty (CAD) at budget K.

    Each image contributes its most realistic crop first (as in RDED); images are ordered by
    the CAD of the source image from the training-dynamics scorer (`keep: hard` = highest CAD
    first, i.e. what is still being learned at the budget) instead of easiest-first.
    """

    requires = frozenset({"crops", "scores"})
    param_schema = {
        "type": "object",
        "properties": {
            "crops": {"type": "string", "description": "crop scorer (kind crops)"},
            "scorer": {"type": "string", "description": "dynamics scorer giving CAD"},
            "factor": _FACTOR,
            "budget": CAD_BUDGET,
            "window_j": {"type": "integer", "minimum": 2, "default": 3},
            "window_w": {"type": "integer", "minimum": 1, "default": 3},
            "keep": {"type": "string", "enum": ["hard", "easy"], "default": "hard"},
        },
        "required": ["crops", "scorer"],
        "additionalProperties": False,
    }

    def _image_rank(self, ctx, cs, rows, rng):
        from ddbench.stages.scores import as_dynamics, cad_at_budget

        scores = cad_at_budget(as_dynamics(ctx.scores), self.params)
        s = scores[cs["image_indices"][rows]]
        if self.params.get("keep", "hard") == "hard":
            s = -s
        return np.lexsort((rng.permutation(len(rows)), s))
