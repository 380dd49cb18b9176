"""Train the small GPT on next-move prediction over random 6x6 Othello games.

    python -m lablib.world.train --games 150000 --steps 3000 --out lablib/world/checkpoints/othello_gpt.pt --seed 0

One CPU thread, fixed seeds, tqdm progress. Writes ``PATH`` (the model's state dict) and
``PATH`` with ``.json`` (config, command, seed, wall time, metrics).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lablib.world.data import PAD, VOCAB_SIZE, GameLabels, games_to_tokens, heldout_games, label_games, make_games
from lablib.world.model import GPT, GPTConfig

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "othello_gpt.pt"


def next_move_loss(model: GPT, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting move t + 1 from moves 0..t (PAD targets ignored)."""
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), ignore_index=PAD)


@torch.no_grad()
def legal_move_metrics(model: GPT, labels: GameLabels, batch_size: int = 500, threshold: float = 0.01) -> dict:
    """How well the model's next-move distribution matches the legal moves, over every position
    that has a next move.

    * ``top1_legal``: the argmax move is legal.
    * ``topk_exact``: the k most likely moves, k = number of legal moves, are exactly the legal
      set (Li et al.'s criterion; they report its error rate).
    * ``threshold_exact``: the moves with probability > ``threshold`` are exactly the legal set.
    * ``legal_mass``: mean probability put on legal moves.
    """
    model.eval()
    sums = dict(top1_legal=0.0, topk_exact=0.0, threshold_exact=0.0, legal_mass=0.0)
    count = 0
    for i in range(0, len(labels.tokens), batch_size):
        tok = labels.tokens[i : i + batch_size]
        legal = labels.legal[i : i + batch_size, : tok.shape[1] - 1]  # position t -> move t + 1
        mask = labels.has_next[i : i + batch_size, : tok.shape[1] - 1]
        probs = model(tok[:, :-1])[..., :PAD].softmax(-1)  # drop the PAD logit
        top1 = probs.argmax(-1, keepdim=True)
        sums["top1_legal"] += legal.gather(-1, top1).squeeze(-1)[mask].float().sum().item()
        k = legal.sum(-1)
        ranks = probs.argsort(-1, descending=True).argsort(-1)  # rank of each move
        in_topk = ranks < k[..., None]
        sums["topk_exact"] += (in_topk == legal).all(-1)[mask].float().sum().item()
        sums["threshold_exact"] += ((probs > threshold) == legal).all(-1)[mask].float().sum().item()
        sums["legal_mass"] += (probs * legal).sum(-1)[mask].sum().item()
        count += mask.sum().item()
    return {k: v / count for k, v in sums.items()} | {"positions": count}


def train(
    n_games: int = 150_000,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    warmup: int = 100,
    weight_decay: float = 0.05,
    seed: int = 0,
    cfg: GPTConfig | None = None,
    eval_games: int = 1000,
    eval_every: int = 500,
    log=print,
    progress: bool = True,
    on_eval=None,
):
    """Train from scratch; returns ``(model, info)``. Games come from ``make_games(n_games, seed)``;
    the held-out evaluation games from ``heldout_games(eval_games)`` (a different seed).
    ``on_eval(model, history)``, if given, is called after each evaluation (e.g. to save a
    checkpoint, so that a long run stopped early still leaves its best model on disk)."""
    torch.manual_seed(seed)
    cfg = cfg or GPTConfig(vocab_size=VOCAB_SIZE)
    t0 = time.perf_counter()
    train_tokens = games_to_tokens(make_games(n_games, seed))
    t_data = time.perf_counter() - t0
    log(f"generated {n_games} games in {t_data:.1f} s")
    held = label_games(heldout_games(eval_games))

    model = GPT(cfg)
    log(f"model: {model.n_params():,} parameters")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98),
    )

    def lr_at(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator().manual_seed(seed + 1)
    history = []
    bar = tqdm(range(steps), disable=not progress, mininterval=2.0)
    ema = None
    for step in bar:
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.randint(0, n_games, (batch_size,), generator=gen)
        loss = next_move_loss(model, train_tokens[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.4f}")
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            m = legal_move_metrics(model, held)
            m |= {"step": step + 1, "train_loss_ema": ema, "elapsed_s": time.perf_counter() - t0}
            history.append(m)
            log(
                f"step {step + 1}: loss {ema:.4f} top1_legal {m['top1_legal']:.4f} "
                f"topk_exact {m['topk_exact']:.4f} legal_mass {m['legal_mass']:.4f} ({m['elapsed_s']:.0f} s)"
            )
            if on_eval is not None:
                on_eval(model, history)
    info = {
        "config": cfg.to_dict(),
        "n_params": model.n_params(),
        "n_games": n_games,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "warmup": warmup,
        "weight_decay": weight_decay,
        "seed": seed,
        "data_seconds": t_data,
        "wall_seconds": time.perf_counter() - t0,
        "eval_games": eval_games,
        "heldout_metrics": history[-1] if history else None,
        "history": history,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    return model, info


def save_checkpoint(model: GPT, info: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def load_checkpoint(path: str | Path = DEFAULT_CHECKPOINT) -> tuple[GPT, dict]:
    """The shipped (or any saved) model in eval mode, and its info dict."""
    path = Path(path)
    info = json.loads(path.with_suffix(".json").read_text())
    model = GPT(GPTConfig(**info["config"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    return model, info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=150_000)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--eval-games", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=str, default=str(DEFAULT_CHECKPOINT))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = GPTConfig(vocab_size=VOCAB_SIZE, n_layer=args.layers, d_model=args.d_model, n_head=args.heads,
                    d_mlp=4 * args.d_model)
    command = "python -m lablib.world.train " + " ".join(sys.argv[1:] if argv is None else argv)

    def save_partial(model, history):
        # a long run leaves a usable checkpoint at every evaluation; the final save overwrites it
        save_checkpoint(model, {"config": cfg.to_dict(), "command": command, "partial": True,
                                "history": history}, args.out)

    model, info = train(args.games, args.steps, args.batch_size, args.lr, warmup=args.warmup, seed=args.seed,
                        cfg=cfg, eval_games=args.eval_games, eval_every=args.eval_every,
                        log=lambda s: tqdm.write(s), on_eval=save_partial)
    info["command"] = command
    save_checkpoint(model, info, args.out)
    print(json.dumps({k: info[k] for k in ("n_params", "wall_seconds", "heldout_metrics")}, indent=2))


if __name__ == "__main__":
    main()
