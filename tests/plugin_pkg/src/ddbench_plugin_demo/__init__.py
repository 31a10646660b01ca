"""A ddbench method plugin: per class, the IPC training images nearest the class mean."""

import numpy as np

from ddbench.methods import CondensedSet, Context, Method, register_method
from ddbench.methods.base import select_indices


@register_method("centroid_nearest")
class CentroidNearest(Method):
    """Per class, the IPC training images nearest the class mean in pixel space."""

    # no IPC-independent inputs: `requires` stays empty; no parameters
    param_schema = {"type": "object", "properties": {}, "additionalProperties": False}

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        pixels = ctx.data.train_images.reshape(len(ctx.data.train_labels), -1)
        orders = []
        for idx in ctx.data.class_indices():
            x = pixels[idx].astype(np.float64)
            dist = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
            orders.append(idx[np.argsort(dist, kind="stable")])
        return select_indices(ctx.data, orders, ipc, self)
