"""Which studies a config's protocols make possible, from plain resolved-protocol dicts.

The workflow asks these while it builds the DAG (which tables and figures to schedule) and the
tables ask them when they render, so both agree. No pandas, no torch.
"""

from __future__ import annotations

# The parts of a resolved protocol that define its recipe (augmentation and budget separate).
RECIPE_KEYS = (
    "preset",
    "labels",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "schedule",
    "temperature",
    "teachers",
)
AUGMENT_KEYS = ("augment", "cutmix", "rrc_scale")
BUDGET_KEYS = ("epochs", "full_epochs")


def _recipe(params: dict, keys) -> tuple:
    return tuple(
        (k, tuple(params[k]) if isinstance(params.get(k), list) else params.get(k)) for k in keys
    )


def has_augmentation(params: dict) -> bool:
    """Whether a resolved protocol augments the images (any augment or CutMix)."""
    return params.get("augment", "none") != "none" or float(params.get("cutmix") or 0) > 0


def hard_label_protocol(protocols: dict[str, dict]) -> str | None:
    """The protocol that gives DD-Ranking's hard-label terms: labels `hard`, preset `hl` first, then by name."""
    hard = [n for n, p in protocols.items() if p.get("labels") == "hard"]
    if not hard:
        return None
    return sorted(hard, key=lambda n: (protocols[n].get("preset") != "hl", n))[0]


def augmentation_twins(protocols: dict[str, dict]) -> dict[str, str]:
    """Augmented protocol → its augmentation-free twin (same recipe and budget, no augment, no CutMix)."""
    twins = {}
    for name, p in sorted(protocols.items()):
        if not has_augmentation(p):
            continue
        for other, q in sorted(protocols.items()):
            if other != name and not has_augmentation(q):
                if _recipe(p, RECIPE_KEYS + BUDGET_KEYS) == _recipe(q, RECIPE_KEYS + BUDGET_KEYS):
                    twins[name] = other
                    break
    return twins


def budget_sweeps(protocols: dict[str, dict]) -> list[list[str]]:
    """Groups of ≥ 2 protocols identical but for their `full_epochs` budget, sorted by budget."""
    groups: dict[tuple, list[str]] = {}
    for name, p in protocols.items():
        if p.get("full_epochs") is None:
            continue
        groups.setdefault(_recipe(p, RECIPE_KEYS + AUGMENT_KEYS), []).append(name)
    sweeps = []
    for names in groups.values():
        budgets = {protocols[n]["full_epochs"] for n in names}
        if len(budgets) >= 2:
            sweeps.append(sorted(names, key=lambda n: (protocols[n]["full_epochs"], n)))
    return sorted(sweeps)


def teacher_sets(protocols: dict[str, dict]) -> dict[str, str]:
    """Protocol → its teachers joined with '+', for protocols that use teacher labels."""
    return {n: "+".join(p["teachers"]) for n, p in protocols.items() if p.get("teachers")}


def teacher_student_study(protocols: dict[str, dict], students: int) -> bool:
    """A teacher × student matrix needs teacher-label protocols and several teachers or students."""
    sets = teacher_sets(protocols)
    return bool(sets) and (len(set(sets.values())) > 1 or students > 1)


def budget_study(protocols: dict[str, dict]) -> bool:
    """Compute-budget curves need protocols that differ only in `full_epochs`."""
    return bool(budget_sweeps(protocols))
