"""Selection with a diffusion prior: DDPS (diffusion-driven patch selection) and PSR
(pool-select-refine). The costly parts are IPC-independent targets (ddps scores, clusters,
the sample pool); `condense` here is the cheap per-IPC step. Definitions: ddbench.stages.ddps and
ddbench.stages.psr.
"""

from __future__ import annotations

import numpy as np

from ddbench.methods.base import CondensedSet, Context, Method, register_method


@register_method("ddps")
class DDPS(Method):
    """DDPS: patches whose class condition best explains them, clustered on DIFT features.

    Per class, the kept patches of the `ddps` scorer are ranked by `ddbench.stages.ddps.rank_patches`
    (clusters by median score, the `top_clusters` best taken nearest-to-centroid round-robin,
    the rest by score). At IPC <= `mosaic_max_ipc` each image is a factor x factor mosaic of
    consecutive picks (row-major), above it each image is one patch resized to the image size.
    Hard labels; `source_indices` lists the source training image of every tile, tile order
    (`tiles_per_image` attribute).
    """

    requires = frozenset({"patches", "clusters"})
    param_schema = {
        "type": "object",
        "properties": {
            "scorer": {"type": "string", "description": "a scorer of kind ddps"},
            "clustering": {
                "type": "string",
                "enum": ["dift", "teacher", "none"],
                "default": "dift",
                "description": "features clustered per class: DIFT, the scorer's teacher's, or none",
            },
            "k": {"type": "integer", "minimum": 1, "default": 32},
            "top_clusters": {"type": "integer", "minimum": 1, "default": 10},
            "factor": {"type": "integer", "minimum": 1, "default": 2},
            "mosaic_max_ipc": {"type": "integer", "minimum": 0, "default": 10},
        },
        "required": ["scorer"],
        "additionalProperties": False,
    }

    def cluster_extractor(self) -> str | None:
        """Name of the clusters target's extractor (None without clustering)."""
        how = self.params.get("clustering", "dift")
        return None if how == "none" else f"{self.params['scorer']}_{how}"

    def input_names(self) -> dict[str, str]:
        out = {"patches": self.params["scorer"]}
        extractor = self.cluster_extractor()
        if extractor is not None:
            out["clusters"] = f"{extractor}-k{int(self.params.get('k', 32))}"
        return out

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        from ddbench.data.h5io import DataFileError
        from ddbench.stages.crops import assemble_mosaics
        from ddbench.stages.ddps import kept_patches, load_clusters, load_patch_scores, rank_patches

        data = ctx.data
        path = ctx.extras["patches_path"]
        ps = load_patch_scores(path, len(data.train_labels))
        rows, patches = kept_patches(ps)
        scores = ps["scores"][rows, patches]
        labels = ps["labels"][rows]
        assign = dist = None
        if self.cluster_extractor() is not None:
            cpath = ctx.extras["clusters_path"]
            cl = load_clusters(cpath)
            if not (np.array_equal(cl["rows"], rows) and np.array_equal(cl["patches"], patches)):
                raise DataFileError(
                    f"{cpath}: clusters were made from another scorer file than {path}"
                )
            assign, dist = cl["assignments"], cl["distances"]
        p = self.params
        factor = int(p.get("factor", 2)) if ipc <= int(p.get("mosaic_max_ipc", 10)) else 1
        need = ipc * factor * factor
        picks = []
        for c in range(data.num_classes):
            members = np.flatnonzero(labels == c)
            if len(members) < need:
                raise ValueError(
                    f"class {data.classes[c]!r} has {len(members)} kept patches, fewer than "
                    f"IPC x tiles = {need}: raise max_images_per_class or keep_per_image"
                )
            order = rank_patches(
                scores[members],
                None if assign is None else assign[members],
                None if dist is None else dist[members],
                int(p.get("top_clusters", 10)),
            )
            picks += [int(m) for m in members[order[:need]]]
        picks = np.array(picks, dtype=np.int64)
        sources = ps["image_indices"][rows[picks]]
        boxes = ps["boxes"][rows[picks], patches[picks]]
        images = assemble_mosaics(
            data.train_float_subset(sources),
            [(k, b) for k, b in enumerate(boxes)],
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
            source_indices=sources.astype(np.int64),
            extra_attrs={"tiles_per_image": factor * factor},
        )


@register_method("psr")
class PSR(Method):
    """PSR: an over-complete prior pool, a budget-sized selection, teacher-guided refinement.

    The pool (`m * max_ipc` samples per class) is its own target; here each class's IPC
    samples are selected (`selection`: criterion | random | first) and their latents refined
    (`refine_steps`, 0 = off). Soft labels: the teacher's softmax at `temperature` of the final
    images. Exact definitions: ddbench.stages.psr.
    """

    requires = frozenset({"prior", "teacher", "pool"})
    param_schema = {
        "type": "object",
        "properties": {
            "prior": {"type": "string", "description": "a configured prior"},
            "teacher": {"type": "string", "description": "selection, refinement and soft labels"},
            "m": {
                "type": "integer",
                "minimum": 1,
                "default": 4,
                "description": "pool = m x max_ipc per class",
            },
            "max_ipc": {
                "type": ["integer", "null"],
                "minimum": 1,
                "default": None,
                "description": "pool size base (null = largest IPC of the grid); fix it so adding IPCs keeps the pool",
            },
            "guidance_scale": {"type": "number", "minimum": 0, "default": 2.0},
            "steps": {"type": "integer", "minimum": 1, "default": 25, "description": "DDIM steps"},
            "pool_seed": {"type": "integer", "minimum": 0, "default": 0},
            "selection": {
                "type": "string",
                "enum": ["criterion", "random", "first"],
                "default": "criterion",
            },
            "informativeness": {
                "type": "string",
                "enum": ["confidence", "entropy", "loss"],
                "default": "entropy",
            },
            "diversity": {"type": "string", "enum": ["kmeans", "herding"], "default": "kmeans"},
            "info_weight": {"type": "number", "minimum": 0, "default": 1.0},
            "refine_steps": {"type": "integer", "minimum": 0, "default": 10},
            "refine_lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.05},
            "proximity": {
                "type": "number",
                "minimum": 0,
                "default": 0.1,
                "description": "lambda of ||z - z0||^2",
            },
            "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 4.0},
            "label_mix": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "batch_size": {"type": "integer", "minimum": 1, "default": 50},
        },
        "required": ["prior", "teacher"],
        "additionalProperties": False,
    }

    def pool_params(self, grid_max_ipc: int) -> dict:
        """The parameters defining this method's pool, given the grid's largest IPC."""
        from ddbench.stages.psr import pool_spec

        return pool_spec(self._filled(), grid_max_ipc)

    def pool_name(self, grid_max_ipc: int) -> str:
        """File name (without .h5) of this method's pool given the grid's largest IPC."""
        from ddbench.stages.psr import pool_key

        return pool_key(self.pool_params(grid_max_ipc))

    def _filled(self) -> dict:
        defaults = {k: v.get("default") for k, v in self.param_schema["properties"].items()}
        return {**defaults, **self.params}

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch

        from ddbench.data.h5io import DataFileError
        from ddbench.stages.ddps import check_prior_fits
        from ddbench.stages.diffusion import load_prior
        from ddbench.stages.psr import informativeness, load_pool, refine_latents, select_class
        from ddbench.training.engine import embed, predict

        data = ctx.data
        p = self._filled()
        shape = (data.in_chans, data.image_size, data.image_size)
        pool_path = ctx.extras["pool_path"]
        pool = load_pool(pool_path, data.num_classes, shape)
        teacher = ctx.teacher.eval()
        dev = ctx.device
        rng = np.random.default_rng(seed)
        images = torch.from_numpy(pool["images"])
        logits = feats = None
        if p["selection"] == "criterion":
            logits = predict(teacher, images, device=dev).numpy()
            feats = embed(teacher, images, device=dev).numpy()
        chosen = []
        for c in range(data.num_classes):
            rows = np.flatnonzero(pool["labels"] == c)
            if len(rows) < ipc:
                raise DataFileError(
                    f"{pool_path}: {len(rows)} pool samples of class {data.classes[c]!r}, fewer "
                    f"than IPC {ipc} (raise the method's max_ipc or m)"
                )
            if p["selection"] == "first":
                pick = np.arange(ipc)
            elif p["selection"] == "random":
                pick = np.sort(rng.choice(len(rows), ipc, replace=False))
            else:
                info = informativeness(logits[rows], pool["labels"][rows], p["informativeness"])
                pick = select_class(
                    feats[rows], info, ipc, p["diversity"], seed, float(p["info_weight"])
                )
            chosen.append(rows[pick])
        chosen = np.concatenate(chosen)
        labels = pool["labels"][chosen]
        out = pool["images"][chosen].copy()
        steps = int(p["refine_steps"])
        if steps > 0:
            prior = load_prior(ctx.extras["prior_path"], device=dev)
            check_prior_fits(prior, data, str(ctx.extras["prior_path"]))
            z_all = pool["noise"] if prior.kind == "unet" else pool["latents"]
            pool_params = pool["params"]
            bs = int(p["batch_size"])
            for s in range(0, len(chosen), bs):
                z0 = torch.from_numpy(z_all[chosen[s : s + bs]]).to(dev)
                y = torch.from_numpy(labels[s : s + bs]).to(dev)
                _, x, _ = refine_latents(
                    prior,
                    teacher,
                    z0,
                    y,
                    steps=steps,
                    lr=float(p["refine_lr"]),
                    lam=float(p["proximity"]),
                    temperature=float(p["temperature"]),
                    label_mix=float(p["label_mix"]),
                    sampler_steps=int(pool_params["steps"]),
                    guidance_scale=float(pool_params["guidance_scale"]),
                    num_classes=data.num_classes,
                )
                out[s : s + bs] = x.float().cpu().numpy()
        with torch.no_grad():
            soft = torch.softmax(
                predict(teacher, torch.from_numpy(out), device=dev) / float(p["temperature"]), 1
            ).numpy()
        return CondensedSet(
            images=np.ascontiguousarray(out.clip(0, 1), dtype=np.float32),
            labels=labels.astype(np.int64),
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
            soft_labels=soft.astype(np.float32),
            extra_attrs={"pool": str(pool_path)},
        )
