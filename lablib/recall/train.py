"""Train a ``LanguageModel`` on MQAR: AdamW, a warmup-then-cosine schedule, early stop at 0.99.

    result = train_recall(LMConfig(vocab=1024, mixer="deltanet", d_model=64, mlp=False),
                          MQARTask(vocab=1024, seq_len=64, n_pairs=4), lr=3e-3)
    result.accuracy, result.state_bytes, result.steps

``sweep_lr`` tries learning rates in turn (recurrent models learn MQAR only in a narrow window)
and keeps the best; it stops early once one reaches the target accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch

from lablib.layers import LanguageModel, LMConfig
from lablib.recall.mqar import IGNORE, MQARData, mqar, recall_accuracy

__all__ = ["MQARTask", "RecallResult", "train_recall", "sweep_lr", "decoding_state_bytes"]


@dataclass(frozen=True)
class MQARTask:
    """The data side of a run: MQAR's shape, how many examples, and the seeds (test seed differs)."""

    vocab: int = 1024
    seq_len: int = 64
    n_pairs: int = 4
    n_train: int = 20_000
    n_test: int = 1_000
    power_a: float = 0.01
    seed: int = 0

    def data(self) -> tuple[MQARData, MQARData]:
        kw = dict(vocab=self.vocab, seq_len=self.seq_len, n_pairs=self.n_pairs, power_a=self.power_a)
        return mqar(self.n_train, seed=self.seed, **kw), mqar(self.n_test, seed=self.seed + 10_000, **kw)


@dataclass
class RecallResult:
    """What one training run measured. history: (step, test accuracy, train loss) at each evaluation."""

    lr: float
    accuracy: float
    best_accuracy: float
    steps: int
    seconds: float
    state_bytes: int
    n_params: int
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def decoding_state_bytes(model: LanguageModel, seq_len: int) -> int:
    """Bytes of decoding state for one sequence after ``seq_len`` tokens, measured on the state tensors.

    Runs the model on a (1, seq_len) batch in float32 and sums the state's tensors (the KV cache
    for softmax attention, S and the conv caches for the recurrent mixers), so it cannot be
    mis-stated by a formula. The position counter of a model with position embeddings is excluded.
    """
    with torch.no_grad():
        _, state = model(torch.zeros(1, seq_len, dtype=torch.long))
    state = [{k: v for k, v in s.items() if k != "position"} for s in state]
    return model.state_nbytes(state)


@torch.no_grad()
def evaluate(model: LanguageModel, data: MQARData, batch_size: int = 250) -> float:
    model.eval()
    hits = total = 0
    for i in range(0, len(data), batch_size):
        logits, _ = model(data.inputs[i:i + batch_size])
        labels = data.labels[i:i + batch_size]
        n = int((labels != IGNORE).sum())
        hits += recall_accuracy(logits, labels) * n
        total += n
    model.train()
    return hits / total


def train_recall(
    config: LMConfig,
    task: MQARTask,
    *,
    lr: float,
    max_steps: int = 3000,
    batch_size: int = 64,
    weight_decay: float = 0.1,
    warmup: int = 100,
    eval_every: int = 100,
    target: float = 0.99,
    seed: int = 0,
    data: tuple[MQARData, MQARData] | None = None,
    progress: bool = True,
) -> RecallResult:
    """Train from scratch; stop at ``max_steps`` or once test accuracy >= ``target``.

    The schedule is linear warmup then cosine decay to 0 over ``max_steps``; the loss is the
    cross-entropy at query positions only. Returns the final and best test accuracy.
    """
    if not lr > 0 or max_steps < 1 or batch_size < 1:
        raise ValueError(f"lr, max_steps and batch_size must be positive; got {lr}, {max_steps}, {batch_size}")
    if config.vocab != task.vocab:
        raise ValueError(f"the model's vocab ({config.vocab}) must be the task's ({task.vocab})")
    train, test = task.data() if data is None else data
    torch.manual_seed(seed)
    model = LanguageModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, max_steps) / max_steps)))
    gen = torch.Generator().manual_seed(seed)
    bar = _progress(max_steps, progress, f"{config.mixer} d={config.d_model} lr={lr:.0e}")
    history, best, acc, start, step = [], 0.0, 0.0, time.perf_counter(), 0
    loss_value = float("nan")
    for step in range(1, max_steps + 1):
        idx = torch.randint(len(train), (batch_size,), generator=gen)
        loss = model.loss(train.inputs[idx], train.labels[idx], ignore_index=IGNORE)
        if not torch.isfinite(loss):
            break  # diverged: keep what was measured so far
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        loss_value = loss.item()
        if step % eval_every == 0 or step == max_steps:
            acc = evaluate(model, test)
            best = max(best, acc)
            history.append((step, round(acc, 4), round(loss_value, 4)))
            if bar is not None:
                bar.set_postfix(acc=f"{acc:.3f}", loss=f"{loss_value:.3f}")
            if acc >= target:
                break
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return RecallResult(lr=lr, accuracy=acc, best_accuracy=best, steps=step,
                        seconds=round(time.perf_counter() - start, 1),
                        state_bytes=decoding_state_bytes(model, task.seq_len),
                        n_params=sum(p.numel() for p in model.parameters()), history=history)


def sweep_lr(config: LMConfig, task: MQARTask, lrs, *, target: float = 0.99, **kwargs) -> tuple[RecallResult, list]:
    """Train once per learning rate (in the order given) until one reaches ``target``; return (best, all)."""
    data = task.data()
    runs = []
    for lr in lrs:
        runs.append(train_recall(config, task, lr=lr, target=target, data=data, **kwargs))
        if runs[-1].best_accuracy >= target:
            break
    return max(runs, key=lambda r: r.best_accuracy), runs


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)
