"""ddbench's evaluation vs DD-Ranking's training routine on the same sets, side by side.

Sets (Fashion-MNIST, built once, seed 0): `hard` = 10 random training images per class with
their hard labels; `soft` = the same images with soft labels, the softmax at temperature 4 of
the config's `convnet` teacher (trained with its config recipe if the bench's results tree
lacks it). Each set is evaluated per seed

* by ddbench: `ddbench.evaluate(...)` (protocol `hl`, or `labels: stored` for `soft`), and
* by DD-Ranking 0.2.0: `LabelRobustScoreHard._compute_hard_label_metrics(...)` (`hard`) or
  `LabelRobustScoreSoft._compute_soft_label_metrics(...)` in mode `S` (`soft`), with the
  evaluator's loaders and attributes built around the tensors (its `get_dataset` has no
  Fashion-MNIST), in its own venv (bench/.venv-ddranking, never a project dependency).

Matched: model (ConvNet depth 3, width 128, instance norm, average pooling), epochs, batch
256, SGD lr 0.01 momentum 0.9 weight decay 5e-4, lr x0.1 at half the epochs (one step per
epoch at IPC 10, so both step at the same point), DSA with the same ratios in single mode
(one family per batch), soft-label loss KL(p || softmax(z/T)) x T^2 at T = 4, the dataset's
mean/std normalisation as the model's first layer, the full 10 000-image test split, torch
threads. Not matchable: DD-Ranking's ConvNet takes 3 x 32 x 32 input, so its images are the
grey images repeated over 3 channels and zero-padded 28 -> 32 px; its DSA and random streams
are its own (global RNG, `DataLoader(num_workers)` workers, a RandomSampler); it tests every
10 epochs and returns the best test accuracy (reported as `acc_best10`; `acc_last` is one
more test pass after training, outside its timed routine); ddbench reports the last epoch.
`wall_s` is the end-to-end time of one evaluation inside its process (ddbench: the
`ddbench.evaluate` call: checks, set file, dataset load, training, test; DD-Ranking: building
the evaluator's loaders and model, then its routine), imports excluded on both sides.

    .venv/bin/python bench/vs_ddranking.py --seeds 0,1,2,3,4            # the real numbers
    .venv/bin/python bench/vs_ddranking.py --seeds 0 --epochs 2         # a smoke run

Writes bench/results/vs_ddranking.tsv (one row per set x side x seed) and .md (mean ± std).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-ddranking"
DDRANKING = "ddranking==0.2.0"
TEMPERATURE = 4.0
DSA_RATIOS = {"scale": 1.2, "rotate": 15.0, "flip": 0.5, "brightness": 1.0,
              "saturation": 2.0, "contrast": 0.5, "crop": 0.125, "cutout": 0.5}  # fmt: skip


# --------------------------------------------------------------------------- DD-Ranking venv


def ensure_ddranking_venv() -> Path:
    """bench/.venv-ddranking with ddranking 0.2.0, reusing the project's torch; its python."""
    python = VENV / "bin" / "python"
    if python.exists() and _run_quiet([str(python), "-c", "import ddranking"]) == 0:
        return python
    import site

    base = Path(sys.base_prefix) / "bin" / "python3"
    print(f"creating {VENV} (python -m venv --system-site-packages)", file=sys.stderr)
    subprocess.run([str(base), "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    # torch lives in the project venv, not in the base interpreter: a .pth file puts the
    # project venv's site-packages behind the new venv's own, so torch is reused, not copied
    out = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(out, "ddbench-project-venv.pth").write_text(site.getsitepackages()[0] + "\n")
    # --no-deps: ddranking pins numpy<2 and scipy<1.16, whose installs would shadow the
    # project's numpy 2 under torch; it runs on them (FACTS). kornia is its one missing need.
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", DDRANKING], check=True)
    subprocess.run([*pip, "kornia"], check=True)
    subprocess.run([str(python), "-c", "import ddranking, kornia, torch"], check=True)
    return python


def _run_quiet(cmd: list[str]) -> int:
    return subprocess.run(cmd, capture_output=True).returncode


# --------------------------------------------------------------------------- sets (ddbench venv)


def bench_config(epochs: int, threads: int) -> dict:
    """Fashion-MNIST (full test split), the config's teacher, two matched protocols."""
    import yaml

    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    dataset = dict(base["datasets"]["fashion_mnist"], max_test_per_class=None)
    recipe = {"epochs": epochs, "batch_size": 256, "optimizer": "sgd", "lr": 0.01,
              "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step_half", "augment": "dsa"}  # fmt: skip
    return {
        "datasets": {"fashion_mnist": dataset},
        "ipcs": [10],
        "seeds": [0],
        "device": "cpu",
        "threads": threads,
        "eval_threads": threads,
        "teachers": {"convnet": base["teachers"]["convnet"]},
        "methods": {"random": {"kind": "random"}},
        "protocols": {
            "hl": {"preset": "hl", **recipe},
            "stored": {"preset": "sl", "labels": "stored", **recipe},
        },
        "students": {"convnet": {"model": "convnet-d3-w128-in"}},
        "claims": None,
    }


def build_sets(cfg: dict, workdir: Path, ipc: int) -> dict:
    """The random IPC set (seed 0), the teacher's soft labels at T, and the test split."""
    import numpy as np
    import torch

    from ddbench.api import _dataset_file, _teacher_files
    from ddbench.data.datasets import load_dataset
    from ddbench.stages.teachers import load_teacher
    from ddbench.training.engine import teacher_probs

    path = _dataset_file(cfg, "fashion_mnist", workdir)
    data = load_dataset(path)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(i, ipc, replace=False) for i in data.class_indices()])
    images = torch.from_numpy(data.train_float_subset(idx))
    labels = torch.from_numpy(data.train_labels[idx].astype(np.int64))
    (teacher_pt,) = _teacher_files(cfg, "fashion_mnist", ["convnet"], path, workdir, "cpu")
    teacher = load_teacher(teacher_pt, data)
    soft = teacher_probs([teacher.eval()], images, TEMPERATURE)
    return {
        "images": images,
        "labels": labels,
        "soft": soft.float(),
        "test_images": torch.from_numpy(data.test_float()),
        "test_labels": torch.from_numpy(data.test_labels.astype(np.int64)),
        "mean": list(map(float, data.mean)),
        "std": list(map(float, data.std)),
    }


def run_ddbench(cfg: dict, sets: dict, seeds, workdir: Path) -> list[dict]:
    import ddbench

    rows = []
    for kind in ("hard", "soft"):
        for seed in seeds:
            t0 = time.perf_counter()
            res = ddbench.evaluate(
                sets["images"], sets["labels"], sets["soft"] if kind == "soft" else None,
                dataset="fashion_mnist", protocol="hl" if kind == "hard" else "stored",
                seeds=[seed], config=cfg, workdir=workdir, name=f"bench_{kind}",
                temperature=TEMPERATURE,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            rec = json.loads(Path(res["path"].iloc[0]).read_text())
            rows.append({"set": kind, "side": "ddbench", "seed": seed,
                         "acc_last": rec["accuracy"], "acc_best10": None, "wall_s": wall,
                         "train_s": rec["wall_time_s"]})  # fmt: skip
            print(f"ddbench {kind} seed {seed}: {rec['accuracy']:.2f} % in {wall:.1f} s",
                  file=sys.stderr)  # fmt: skip
    return rows


# --------------------------------------------------------------------------- DD-Ranking worker


def worker(args) -> None:
    """Runs in bench/.venv-ddranking: DD-Ranking's routines on the tensors in args.tensors."""
    import torch
    import torch.nn.functional as F
    from ddranking.aug import DSA
    from ddranking.metrics import LabelRobustScoreHard, LabelRobustScoreSoft
    from ddranking.utils import TensorDataset, build_model, set_seed, validate
    from torch.utils.data import DataLoader, RandomSampler

    torch.set_num_threads(args.threads)
    t = torch.load(args.tensors, weights_only=True)
    mean = torch.tensor(t["mean"] * 3).view(1, 3, 1, 1)
    std = torch.tensor(t["std"] * 3).view(1, 3, 1, 1)

    def to_32px_rgb(x):  # grey 28 px -> 3 channels, zero-padded to 32 px
        return F.pad(x.repeat(1, 3, 1, 1), (2, 2, 2, 2))

    class Normalized(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("mean", mean.clone())
            self.register_buffer("std", std.clone())

        def forward(self, x):
            return self.net((x - self.mean) / self.std)

    images = to_32px_rgb(t["images"])
    test = to_32px_rgb(t["test_images"])
    rows = []
    for kind in ("hard", "soft"):
        for seed in args.seeds:
            t0 = time.perf_counter()
            set_seed(seed)
            cls = LabelRobustScoreHard if kind == "hard" else LabelRobustScoreSoft
            ev = cls.__new__(cls)  # its __init__ calls get_dataset, which has no Fashion-MNIST
            ev.use_dist, ev.rank, ev.gpu, ev.world_size = False, 0, 0, 1
            ev.device, ev.dataset, ev.num_classes, ev.ipc = "cpu", "FashionMNIST", 10, args.ipc
            ev.im_size, ev.class_map = (32, 32), {c: c for c in range(10)}
            ev.optimizer, ev.lr_scheduler, ev.step_size = "sgd", "step", max(1, args.epochs // 2)
            ev.weight_decay, ev.momentum, ev.num_epochs = 5e-4, 0.9, args.epochs
            ev.syn_batch_size = ev.real_batch_size = 256
            ev.num_workers, ev.custom_train_trans = args.ddranking_workers, None
            ev.test_interval = min(10, args.epochs)  # its 10, or one test in a short run
            ev.aug_func = DSA(dict(DSA_RATIOS))  # single mode ('S'), as ddbench's DSA
            test_ds = TensorDataset(test, t["test_labels"])
            ev.test_loader_syn = DataLoader(test_ds, batch_size=256, num_workers=ev.num_workers,
                                            sampler=RandomSampler(test_ds))  # fmt: skip
            model = Normalized(build_model("ConvNet-3", 10, (32, 32), device="cpu"))
            if kind == "hard":
                best = ev._compute_hard_label_metrics(model, images, None, 0.01, t["labels"], "syn")
            else:
                ev.soft_label_mode, ev.teacher_models = "S", None
                ev.soft_label_criterion = "kl"
                ev.loss_fn_kwargs = {"temperature": TEMPERATURE, "scale_loss": True}
                # its KL takes teacher logits z (softmax(z / T)); T * log p gives back p
                logits = TEMPERATURE * torch.log(t["soft"].clamp_min(1e-12))
                best = ev._compute_soft_label_metrics(model, images, None, 0.01, logits)
            wall = time.perf_counter() - t0
            last = validate(model=model, loader=ev.test_loader_syn, class_map=ev.class_map,
                            device="cpu")  # fmt: skip
            rows.append({"set": kind, "side": "ddranking", "seed": seed, "acc_last": float(last),
                         "acc_best10": float(best), "wall_s": wall, "train_s": None})  # fmt: skip
            print(f"ddranking {kind} seed {seed}: best {best:.2f} %, last {last:.2f} % in "
                  f"{wall:.1f} s", file=sys.stderr)  # fmt: skip
    Path(args.worker_out).write_text(json.dumps(rows))


# --------------------------------------------------------------------------- report


def write_results(rows: list[dict], out: Path, meta: str) -> None:
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    cols = ["set", "side", "seed", "acc_last", "acc_best10", "wall_s", "train_s"]
    lines = ["\t".join(cols)]
    for r in rows:
        lines.append(
            "\t".join(
                "" if r[c] is None else (f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]))
                for c in cols
            )
        )
    out.with_suffix(".tsv").write_text("\n".join(lines) + "\n")

    def stat(values):
        v = np.array([x for x in values if x is not None], dtype=float)
        if not len(v):
            return "–"
        return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    md = [meta, "", "| set | side | seeds | accuracy, last epoch (%) | accuracy, best of tests every 10 epochs (%) | wall per evaluation (s) |",
          "|---|---|---|---|---|---|"]  # fmt: skip
    for kind in ("hard", "soft"):
        for side in ("ddbench", "ddranking"):
            part = [r for r in rows if r["set"] == kind and r["side"] == side]
            if part:
                md.append(f"| {kind} | {side} | {len(part)} | {stat(r['acc_last'] for r in part)} | "
                          f"{stat(r['acc_best10'] for r in part)} | {stat(r['wall_s'] for r in part)} |")  # fmt: skip
    md += ["", *comparison_lines(rows)]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def comparison_lines(rows: list[dict]) -> list[str]:
    """Per set: accuracy difference against the larger std, and the wall-time ratio."""
    import numpy as np

    lines = []
    for kind in ("hard", "soft"):
        acc, wall = {}, {}
        for side in ("ddbench", "ddranking"):
            part = [r for r in rows if r["set"] == kind and r["side"] == side]
            acc[side] = np.array([r["acc_last"] for r in part], dtype=float)
            wall[side] = np.array([r["wall_s"] for r in part], dtype=float)
        if min(len(acc["ddbench"]), len(acc["ddranking"])) < 2:
            continue
        diff = acc["ddbench"].mean() - acc["ddranking"].mean()
        std = max(acc["ddbench"].std(ddof=1), acc["ddranking"].std(ddof=1))
        ratio = wall["ddranking"].mean() / wall["ddbench"].mean()
        verdict = "within" if abs(diff) <= std else "outside"
        lines.append(
            f"- {kind}: accuracy ddbench − DD-Ranking {diff:+.2f} points, {verdict} one std "
            f"({std:.2f}); DD-Ranking / ddbench wall time per evaluation {ratio:.2f}×"
        )
    return lines


def read_rows(path: Path) -> list[dict]:
    """Rows of a TSV this script wrote (to merge the two sides of separate runs)."""
    lines = path.read_text().splitlines()
    cols = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        rec = dict(zip(cols, line.split("\t"), strict=True))
        rows.append(
            {
                "set": rec["set"],
                "side": rec["side"],
                "seed": int(rec["seed"]),
                **{c: float(rec[c]) if rec[c] else None for c in cols[3:]},
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma list (default 5 seeds)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ddranking-workers", type=int, default=4,
                    help="DataLoader workers of DD-Ranking's loaders (its default 4)")  # fmt: skip
    ap.add_argument("--sides", default="ddbench,ddranking")
    ap.add_argument("--workdir", type=Path, default=HERE / "results" / "vs_ddranking_work",
                    help="results tree of the ddbench side (dataset, teacher, records)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=HERE / "results" / "vs_ddranking",
                    help="writes OUT.tsv and OUT.md")  # fmt: skip
    ap.add_argument("--merge", type=Path, nargs="+", metavar="TSV",
                    help="only merge the TSVs of earlier runs (e.g. one per side) into OUT")  # fmt: skip
    ap.add_argument("--meta", default=None, help="with --merge: the table's first line")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tensors", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.worker:
        worker(args)
        return
    if args.merge:
        rows = [row for tsv in args.merge for row in read_rows(tsv)]
        write_results(rows, args.out, args.meta or f"merged from {', '.join(map(str, args.merge))}")
        return
    import torch

    sides = set(args.sides.split(","))
    torch.set_num_threads(args.threads)
    python = ensure_ddranking_venv() if "ddranking" in sides else None
    cfg = bench_config(args.epochs, args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    sets = build_sets(cfg, args.workdir, args.ipc)
    rows = []
    if "ddbench" in sides:
        rows += run_ddbench(cfg, sets, args.seeds, args.workdir)
    if python is not None:
        tensors = args.workdir / "sets.pt"
        torch.save(sets, tensors)
        out = args.workdir / "ddranking_rows.json"
        cmd = [str(python), __file__, "--worker", "--tensors", str(tensors), "--worker-out",
               str(out), "--seeds", ",".join(map(str, args.seeds)), "--epochs", str(args.epochs),
               "--ipc", str(args.ipc), "--threads", str(args.threads),
               "--ddranking-workers", str(args.ddranking_workers)]  # fmt: skip
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        rows += json.loads(out.read_text())
    meta = (f"Fashion-MNIST, random IPC {args.ipc} (set seed 0), ConvNet-D3-W128, {args.epochs} "
            f"epochs, batch 256, SGD 0.01, {args.threads} threads, {time.strftime('%Y-%m-%d')}; "
            f"DD-Ranking {DDRANKING.split('==')[1]}, {args.ddranking_workers} loader workers")  # fmt: skip
    write_results(rows, args.out, meta)


if __name__ == "__main__":
    main()
