"""Train a :class:`~lablib.onion.model.RepeatGRU` on the repeat task.

    python -m lablib.onion.train --hidden 64 --steps 30000 --seed 0 --out lablib/onion/checkpoints/repeat_gru_h64.pt
    python -m lablib.onion.train --interventions-only --out lablib/onion/checkpoints/repeat_gru_h64.pt

One CPU thread, fixed seed, tqdm progress bar, fresh random sequences every step (the held-out
split is never sampled). Writes ``--out`` (config + state dict, a few hundred KB at most) and the
same path with ``.json`` (exact command, seed, wall time, held-out metrics).

Unless ``--no-interventions``, it then fits the three interventions of :mod:`lablib.onion.analysis`
(subspace, onion, additive) on sequences of ``--analysis-length`` and writes them to
``PATH`` with ``_interventions.pt``, adding their held-out success rates, the linear-probe
accuracies and the random-init control to the ``.json`` under ``"analysis"``.
``--interventions-only`` does just that step for an existing checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lablib.onion.model import RepeatConfig, RepeatGRU, repeat_accuracy
from lablib.onion.task import SPLIT_MIN_LEN, fixed_length_batch, sample_batch

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "repeat_gru_h64.pt"

__all__ = ["train", "heldout_metrics", "save_checkpoint", "load_checkpoint", "interventions_path", "fit_and_save_interventions", "CHECKPOINT_DIR", "DEFAULT_CHECKPOINT"]


@torch.no_grad()
def heldout_metrics(model: RepeatGRU, n: int = 2000, seed: int = 1234) -> dict:
    """Greedy repeat accuracy on held-out sequences (never sampled in training).

    Returns ``{"heldout_sequence_acc", "heldout_token_acc"}`` over ``n`` held-out sequences of
    random length ``SPLIT_MIN_LEN..max_len``, plus ``"seq_acc_by_length"`` (length -> sequence
    accuracy, ``n // 4`` held-out sequences per length).
    """
    model.eval()
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    tok, lens = sample_batch(n, vocab=cfg.vocab, max_len=cfg.max_len, min_len=min(SPLIT_MIN_LEN, cfg.max_len), split="heldout", generator=g)
    acc = repeat_accuracy(model, tok, lens)
    by_len = {}
    for L in range(SPLIT_MIN_LEN, cfg.max_len + 1):
        by_len[L] = repeat_accuracy(model, fixed_length_batch(max(1, n // 4), L, vocab=cfg.vocab, seed=seed + L))["sequence"]
    return {"heldout_sequence_acc": acc["sequence"], "heldout_token_acc": acc["token"], "seq_acc_by_length": by_len}


def train(
    cfg: RepeatConfig | None = None,
    *,
    steps: int = 6000,
    batch_size: int = 256,
    lr: float = 3e-3,
    warmup: int = 200,
    seed: int = 0,
    clip: float = 1.0,
    progress: bool = True,
    log_every: int = 200,
):
    """Train from scratch; returns ``(model, history)`` with ``history`` a list of ``(step, loss)``.

    Adam, linear warm-up then cosine decay to 5% of ``lr``, gradient clipping at ``clip``.
    """
    cfg = cfg or RepeatConfig()
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int; got {steps!r}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    model = RepeatGRU(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def lr_at(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    history, running = [], None
    bar = tqdm(range(steps), desc=f"GRU h={cfg.hidden}", disable=not progress, mininterval=1.0)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        tok, lens = sample_batch(batch_size, vocab=cfg.vocab, max_len=cfg.max_len, generator=g)
        loss = model.loss(tok, lens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % log_every == 0 or step == steps - 1:
            history.append((step, loss.item()))
            bar.set_postfix(loss=f"{running:.4f}")
    model.eval()
    return model, history


def save_checkpoint(model: RepeatGRU, path) -> Path:
    """Write ``{"config": ..., "state_dict": ...}`` to ``path`` (float32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.cfg.to_dict(), "state_dict": {k: v.detach().float().clone() for k, v in model.state_dict().items()}}, path)
    return path


def load_checkpoint(path=DEFAULT_CHECKPOINT) -> RepeatGRU:
    """Load a checkpoint written by :func:`save_checkpoint`; returns the model in eval mode.

    ``path`` may also be a bare hidden size (``64``) or a file name inside ``CHECKPOINT_DIR``.
    """
    if isinstance(path, int) and not isinstance(path, bool):
        path = CHECKPOINT_DIR / f"repeat_gru_h{path}.pt"
    path = Path(path)
    if not path.exists() and (CHECKPOINT_DIR / path.name).exists():
        path = CHECKPOINT_DIR / path.name
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = RepeatGRU(RepeatConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model


def interventions_path(path) -> Path:
    """Where the fitted interventions of checkpoint ``path`` live."""
    path = Path(path)
    return path.with_name(path.stem + "_interventions.pt")


def fit_and_save_interventions(model: RepeatGRU, out, *, length: int, steps: int, seed: int = 0, command: str = "") -> dict:
    """Fit subspace / onion / additive interventions, save them next to ``out``, return a summary."""
    from lablib.onion import analysis as A

    t0 = time.perf_counter()
    train_states = A.collect_states(model, 3000, length, split="train", seed=seed + 1)
    ivs = {k: A.fit_intervention(model, k, length=length, steps=steps, seed=seed, init_states=train_states) for k in A.KINDS}
    fit_s = time.perf_counter() - t0
    res = A.analyse(model, length=length, n_edit=500, seed=seed, interventions=ivs)
    summary = {
        "command": command,
        "length": length,
        "fit_steps": steps,
        "fit_wall_time_s": round(fit_s, 1),
        "base_sequence_acc": repeat_accuracy(model, A.fixed_length_batch(1000, length, vocab=model.cfg.vocab, seed=seed + 5))["sequence"],
        "probe_acc": res["probe"].round(4).tolist(),
        "probe_acc_random_init": res["probe_random"].round(4).tolist(),
        "contribution_norms_relative": res["contributions"]["relative"].round(4).tolist(),
        "additive_fit_r2": round(res["contributions"]["r2"], 4),
        "onion_scales": res["onion_scales"].round(4).tolist(),
        "intervention_success": {k: {"mean": round(v["mean_success"], 4), "by_position": v["success"].round(4).tolist(), "target_token": round(v["mean_target"], 4)} for k, v in res["interventions"].items()},
    }
    A.save_interventions(ivs, interventions_path(out), length=length, info=summary)
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--emb", type=int, default=32)
    p.add_argument("--vocab", type=int, default=30)
    p.add_argument("--max-len", type=int, default=9)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--no-interventions", action="store_true", help="skip fitting the interventions")
    p.add_argument("--interventions-only", action="store_true", help="load --out and only fit the interventions")
    p.add_argument("--analysis-length", type=int, default=7)
    p.add_argument("--fit-steps", type=int, default=1500)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = "python -m lablib.onion.train " + " ".join(shlex.quote(a) for a in argv_used)
    json_path = Path(args.out).with_suffix(".json")
    if args.interventions_only:
        model = load_checkpoint(args.out)
        record = json.loads(json_path.read_text()) if json_path.exists() else {}
        record["analysis"] = fit_and_save_interventions(model, args.out, length=args.analysis_length, steps=args.fit_steps, seed=args.seed, command=command)
        json_path.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record["analysis"], indent=1))
        return
    cfg = RepeatConfig(vocab=args.vocab, max_len=args.max_len, emb=args.emb, hidden=args.hidden)
    t0 = time.perf_counter()
    model, history = train(cfg, steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed)
    wall = time.perf_counter() - t0
    metrics = heldout_metrics(model)
    save_checkpoint(model, args.out)
    record = {
        "command": command,
        "seed": args.seed,
        "config": cfg.to_dict(),
        "steps": args.steps,
        "batch_size": args.batch,
        "lr": args.lr,
        "threads": args.threads,
        "torch": torch.__version__,
        "wall_time_s": round(wall, 1),
        "final_train_loss": history[-1][1],
        "loss_history": history,
        **metrics,
    }
    if not args.no_interventions:
        record["analysis"] = fit_and_save_interventions(model, args.out, length=min(args.analysis_length, cfg.max_len), steps=args.fit_steps, seed=args.seed, command=command)
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "loss_history"}, indent=1))


if __name__ == "__main__":
    main()
