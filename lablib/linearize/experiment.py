"""The chapter's experiment: linearize the Othello GPT and all-MiniLM-L6-v2 in stages, train what
each stage trains, save the trained parameters, and measure every stage against the teacher.

Stages (``STAGES``), each a linearized copy of the teacher:

1. ``swap``: elu+1 feature maps, nothing trained (the baseline every paper compares against);
2. ``transfer-ce``: Hedgehog maps trained by attention transfer on the attention weights (cross-entropy, as Hedgehog);
3. ``transfer-mse``: the same trained on the attention outputs (MSE, as LoLCATs);
4. ``hybrid``: softmax in a sliding window plus Hedgehog linear attention beyond it, maps and the
   per-head mixing factor trained by attention transfer (MSE);
5. ``hybrid+lora``: the hybrid with LoRA (rank 8, alpha 16) on q, k, v and the output projection,
   trained on the model's task (stage 4's maps frozen);
6. ``linear+lora``: the same LoRA on stage 3 (no window), to see what the window adds.

and two diagnostics with nothing trained: ``window-only`` (the hybrid with its linear part dropped,
which is plain sliding-window softmax) and ``hybrid+lora, linear dropped``.

Tasks. The Othello GPT: attention transfer on ``n_train_games`` fresh random games; LoRA on the
next-move loss the GPT was trained with, on another ``lora_steps * batch_games`` fresh games, each
read once (ten epochs over the 4,000 transfer games overfit them: the exact-legal-set rate fell); measured by :func:`lablib.world.legal_move_metrics` on the
1,000 held-out games. MiniLM: attention transfer on the 3,840 sentences that ``make_sentences(48,
seed=1)`` makes beyond the shipped 768 (same templates, other sentences); LoRA on ``1 - cos`` to the
teacher's sentence embeddings (MiniLM's own contrastive loss needs sentence pairs we do not have);
measured on the shipped sentences' random split of t3_02 (the probe fitted on the teacher's
embeddings of the 576 training sentences, everything measured on the 192 test sentences).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.linearize.experiment --out lablib/linearize/results/linearize.json

writes the JSON (config, seeds, commit, training curves, metrics) and ``othello_gpt.pt`` /
``minilm.pt`` beside it (trainable parameters only, per stage). The chapter rebuilds every stage
from those files and recomputes the metrics.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from lablib.linearize.convert import attention_inputs, linearize, linearized_layers, lora_targets
from lablib.linearize.lora import add_lora, load_lora_state, lora_finetune, lora_parameters, lora_state
from lablib.linearize.metrics import call, layer_metrics, minilm_metrics, othello_metrics, teacher_reference
from lablib.linearize.transfer import attention_transfer
from lablib.memo import session_memo
from lablib.provenance import git_commit, read_results

__all__ = [
    "CONFIG", "DIAGNOSTICS", "MiniLMTask", "OthelloTask", "Task", "METRICS", "REBUILD", "RESULTS", "STAGES", "build_stage", "evaluate", "layer_frame",
    "load_results", "load_states", "max_difference", "minilm_task", "othello_task", "run", "stage_table", "train_model",
]

RESULTS = Path(__file__).parent / "results" / "linearize.json"
REBUILD = ("OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.linearize.experiment "
           "--out lablib/linearize/results/linearize.json")
STATE_FILES = {"Othello GPT": "othello_gpt.pt", "MiniLM": "minilm.pt"}

# name -> how to build it: feature map, window ("W": the model's window), transfer loss, LoRA, parent stage
STAGES = {
    "swap": {"feature_map": "elu+1", "window": 0, "transfer": None},
    "transfer-ce": {"feature_map": "hedgehog", "window": 0, "transfer": "ce"},
    "transfer-mse": {"feature_map": "hedgehog", "window": 0, "transfer": "mse"},
    "hybrid": {"feature_map": "hedgehog", "window": "W", "transfer": "mse"},
    "hybrid+lora": {"parent": "hybrid", "lora": True},
    "linear+lora": {"parent": "transfer-mse", "lora": True},
}
DIAGNOSTICS = {"window-only": "hybrid", "hybrid+lora, linear dropped": "hybrid+lora"}

CONFIG = {
    "seed": 0,
    "feature_dim": None,  # Hedgehog F = head dim (32 for both models): 2 F = 64 features per head
    "transfer": {"steps": 400, "lr": 1e-2},
    "lora": {"rank": 8, "alpha": 16.0, "lr": 1e-3},
    "Othello GPT": {"window": 4, "n_train_games": 4000, "train_seed": 20_000_003, "batch_games": 64,
                    "lora_steps": 600, "n_eval_games": 1000, "layer_games": 200, "folds": 10},
    "MiniLM": {"window": 2, "batch_sentences": 32, "lora_steps": 300, "extra_seed": 1, "per_pair": 48,
               "layer_sentences": 64},
}


# --------------------------------------------------------------------------- tasks


class Task:
    """What one model needs: its teacher, training batches, the LoRA loss and the evaluation."""

    name: str
    teacher: nn.Module
    train_batches: list
    layer_batches: list

    def lora_loss(self, model: nn.Module, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def downstream(self, model: nn.Module) -> dict:
        raise NotImplementedError


class OthelloTask(Task):
    """The Othello GPT, its training games (for transfer and LoRA) and held-out games (for metrics)."""

    name = "Othello GPT"

    def __init__(self, cfg: dict | None = None, *, train: bool = True):
        from lablib.world.data import games_to_tokens, heldout_games, label_games, make_games
        from lablib.world.train import load_checkpoint

        c = {**CONFIG[self.name], **(cfg or {})}
        self.cfg = c
        self.teacher, _ = load_checkpoint()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        if train:
            self.tokens = games_to_tokens(make_games(c["n_train_games"], c["train_seed"]))
            self.train_batches = [self.tokens[i : i + c["batch_games"], :-1]
                                  for i in range(0, len(self.tokens), c["batch_games"])]
            # LoRA reads each of its games once: repeating 4,000 games for ten epochs overfits them
            self.lora_tokens = games_to_tokens(make_games(c["lora_steps"] * c["batch_games"], c["train_seed"] + 1))
            self.lora_step = 0
        held = heldout_games(c["n_eval_games"])
        self.labels = label_games(held)
        self.layer_batches = [games_to_tokens(held[: c["layer_games"]])[:, :-1]]

    def lora_loss(self, model, gen):
        from lablib.world.train import next_move_loss

        bs = self.cfg["batch_games"]
        i = self.lora_step % (len(self.lora_tokens) // bs)
        self.lora_step += 1
        return next_move_loss(model, self.lora_tokens[i * bs : (i + 1) * bs])

    def downstream(self, model):
        return othello_metrics(model, self.labels, folds=self.cfg["folds"])


def othello_task(cfg: dict | None = None, *, train: bool = True) -> OthelloTask:
    """The Othello GPT's :class:`OthelloTask` (``train=False``: only what measuring needs)."""
    return OthelloTask(cfg, train=train)


def minilm_split():
    """``(train_texts, test_texts, test_sentiment, train_sentiment)`` of t3_02's random split of the shipped sentences."""
    from lablib.encoder import load_sentences
    from lablib.encoder.probes import stratified_split

    s = load_sentences()
    tr, te = stratified_split(torch.tensor(s.sentiment), torch.tensor(s.topic), torch.tensor(s.pair),
                              test_fraction=0.25, seed=0)  # = lablib.encoder.experiments.splits(data, "random")[0]
    texts, sent = list(s.texts), torch.tensor(s.sentiment)
    return [texts[i] for i in tr], [texts[i] for i in te], sent[te], sent[tr]


class MiniLMTask(Task):
    """all-MiniLM-L6-v2, training sentences (for transfer and LoRA) and the shipped test sentences."""

    name = "MiniLM"

    def __init__(self, cfg: dict | None = None, *, train: bool = True):
        from lablib.encoder import LogisticProbe, load_encoder, load_sentences
        from lablib.encoder.sentences import make_sentences
        from lablib.linearity.models import minilm_sentence_embeddings

        c = {**CONFIG[self.name], **(cfg or {})}
        self.cfg = c
        self.tokenizer, self.teacher = load_encoder()
        train_texts, self.test_texts, self.test_sentiment, train_sentiment = minilm_split()
        if train:
            shipped = set(load_sentences().texts)
            extra = [t for t in make_sentences(c["per_pair"], seed=c["extra_seed"]).texts if t not in shipped]
            self.extra_texts = extra
            bs = c["batch_sentences"]
            self.train_batches = [self._tok(extra[i : i + bs]) for i in range(0, len(extra), bs)]
            self.train_targets = [minilm_sentence_embeddings(extra[i : i + bs]) for i in range(0, len(extra), bs)]
        self.teacher_test = minilm_sentence_embeddings(self.test_texts)
        self.probe = LogisticProbe.fit(minilm_sentence_embeddings(train_texts).double(), train_sentiment)
        self.layer_batches = [self._tok(self.test_texts[: c["layer_sentences"]])]

    def _tok(self, texts):
        return dict(self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt"))

    def lora_loss(self, model, gen):
        i = int(torch.randint(len(self.train_batches), (1,), generator=gen))
        batch, target = self.train_batches[i], self.train_targets[i]
        last = model(**batch).last_hidden_state
        m = batch["attention_mask"].to(last.dtype).unsqueeze(-1)
        emb = torch.nn.functional.normalize((last * m).sum(1) / m.sum(1), dim=-1)
        return 1 - (emb * target).sum(1).mean()

    def downstream(self, model):
        return minilm_metrics(model, self.test_texts, self.teacher_test, self.probe, self.test_sentiment)


# --------------------------------------------------------------------------- stages


@session_memo
def minilm_task(cfg: dict | None = None, *, train: bool = True) -> MiniLMTask:
    """all-MiniLM-L6-v2's :class:`MiniLMTask` (``train=False``: only what measuring needs)."""
    return MiniLMTask(cfg, train=train)


def _spec(stage: str) -> dict:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
    spec = dict(STAGES[stage])
    if "parent" in spec:
        spec = {**STAGES[spec["parent"]], **spec}
    return spec


def build_stage(task: Task, stage: str, states: dict | None = None, config: dict | None = None) -> nn.Module:
    """The linearized model of one stage: the teacher linearized as the stage says, with the saved
    trained parameters (``states[stage]``, from :func:`load_states`) loaded when given."""
    cfg = {**CONFIG, **(config or {})}
    spec = _spec(stage)
    window = task.cfg["window"] if spec["window"] == "W" else spec["window"]
    model = linearize(task.teacher, feature_map=spec["feature_map"], feature_dim=cfg["feature_dim"], window=window)
    if spec.get("lora"):
        add_lora(model, lora_targets(model), cfg["lora"]["rank"], cfg["lora"]["alpha"], seed=cfg["seed"])
    state = None if states is None else states.get(stage, states.get(spec.get("parent")))
    if state is not None:
        for layer, s in zip(linearized_layers(model), state["attention"]):
            layer.load_state_dict(s, strict=False)
        if state.get("lora"):
            load_lora_state(model, state["lora"])
    return model


def _n_params(params) -> int:
    return sum(p.numel() for p in params)


def train_model(task: Task, config: dict | None = None, progress: bool = True, log=print) -> tuple[dict, dict]:
    """Train every stage of one model; returns ``(states, info)``: the trainable parameters per
    stage, and per stage the transfer curves, LoRA curve, trainable parameter count and examples used."""
    cfg = {**CONFIG, **(config or {})}
    inputs = attention_inputs(task.teacher, lambda m: [call(m, b) for b in task.train_batches])
    n_examples = sum(len(b) if isinstance(b, torch.Tensor) else len(b["input_ids"]) for b in task.train_batches)
    states, info = {}, {}
    for stage, spec in STAGES.items():
        t0 = time.perf_counter()
        full = _spec(stage)
        if spec.get("parent"):
            model = build_stage(task, stage, states, cfg)
            params = lora_parameters(model)
            gen = torch.Generator().manual_seed(cfg["seed"] + 1)
            task.lora_step = 0
            steps = task.cfg["lora_steps"]
            curve = lora_finetune(model, lambda _s: task.lora_loss(model, gen), steps=steps, lr=cfg["lora"]["lr"],
                                  desc=f"{task.name} {stage}", progress=progress)  # eval mode: no dropout
            states[stage] = {"attention": states[spec["parent"]]["attention"], "lora": lora_state(model)}
            info[stage] = {"lora_curve": curve, "trainable_params": _n_params(params), "steps": steps,
                           "examples_seen": steps * task.cfg.get("batch_games", task.cfg.get("batch_sentences")),
                           "examples_available": len(task.lora_tokens) if hasattr(task, "lora_tokens") else n_examples,
                           "trainable_params_total": _n_params(params) + info[spec["parent"]]["trainable_params_total"]}
        else:
            model = build_stage(task, stage, None, cfg)
            layers = linearized_layers(model)
            if full["transfer"] is None:
                info[stage] = {"trainable_params": 0, "trainable_params_total": 0, "examples_seen": 0}
            else:
                from lablib.linearize.transfer import transfer_parameters

                n = sum(_n_params(transfer_parameters(layer)) for layer in layers)
                rows = attention_transfer(layers, inputs, loss=full["transfer"], steps=cfg["transfer"]["steps"],
                                          lr=cfg["transfer"]["lr"], seed=cfg["seed"], progress=progress)
                per_batch = len(task.train_batches[0]) if isinstance(task.train_batches[0], torch.Tensor) \
                    else len(task.train_batches[0]["input_ids"])
                info[stage] = {"transfer": rows, "trainable_params": n, "trainable_params_total": n,
                               "steps_per_layer": cfg["transfer"]["steps"],
                               "examples_seen": cfg["transfer"]["steps"] * per_batch,
                               "examples_available": n_examples}
            states[stage] = {"attention": [layer.trainable_state() for layer in layers], "lora": None}
        info[stage]["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{task.name} {stage}: trained in {info[stage]['seconds']} s")
    return states, info


@session_memo
def evaluate(task: Task, states: dict, config: dict | None = None) -> list[dict]:
    """One row per condition (teacher, every stage, the diagnostics): ``model``, ``stage``, the
    downstream metrics, and ``layers`` (:func:`lablib.linearize.metrics.layer_metrics`)."""
    # The models built here draw random initial feature maps that the saved states overwrite (or, in the
    # teacher's full-window reference layers, never use): a forked generator keeps the caller's random
    # stream where it was, so measuring has no side effect (and @session_memo may reuse it).
    with torch.random.fork_rng(devices=[]):
        rows = [{"model": task.name, "stage": "teacher", **task.downstream(task.teacher)}]
        reference = teacher_reference(task.teacher, task.layer_batches)
        conditions = [(s, s, False) for s in STAGES] + [(d, parent, True) for d, parent in DIAGNOSTICS.items()]
        for name, stage, drop in conditions:
            model = build_stage(task, stage, states, config)
            for layer in linearized_layers(model):
                layer.drop_linear = drop
            rows.append({"model": task.name, "stage": name, **task.downstream(model),
                         "layers": layer_metrics(model, reference)})
    return rows


METRICS = {
    "Othello GPT": {"top1_legal": "top-1 move legal", "topk_exact": "exact legal set"},
    "MiniLM": {"cos_to_teacher": "embedding cosine to teacher", "sentiment_probe": "sentiment probe (t3_02)"},
}


def stage_table(rows: list[dict], training: dict):
    """One row per (model, condition, metric): ``value``, ``se`` (its standard error), ``share``
    (value over the teacher's value), ``trainable`` (parameters trained, all stages up to this one)
    and ``examples`` (training sequences drawn, games or sentences, all stages up to this one).
    ``rows``: :func:`evaluate` rows; ``training``: the ``training`` part of the results."""
    import pandas as pd

    out = []
    for model, metrics in METRICS.items():
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        teacher = next(r for r in mine if r["stage"] == "teacher")
        for r in mine:
            stage = DIAGNOSTICS.get(r["stage"], r["stage"])
            info = training.get(model, {}).get(stage, {})
            parent = STAGES.get(stage, {}).get("parent")
            examples = info.get("examples_seen", 0)
            if parent:
                examples += training[model][parent].get("examples_seen", 0)
            for metric, label in metrics.items():
                out.append({"model": model, "stage": r["stage"], "metric": metric, "label": label,
                            "value": r[metric], "se": r.get(f"{metric}_se", 0.0),
                            "share": r[metric] / teacher[metric],
                            "trainable": info.get("trainable_params_total", 0) if r["stage"] != "teacher" else 0,
                            "examples": examples if r["stage"] != "teacher" else 0})
    return pd.DataFrame(out)


def layer_frame(rows: list[dict]):
    """The per-layer measures of every condition as one frame (model, stage, layer, measures)."""
    import pandas as pd

    return pd.DataFrame([{"model": r["model"], "stage": r["stage"], **layer}
                         for r in rows for layer in r.get("layers", [])])


def max_difference(live: list[dict], shipped: list[dict]) -> float:
    """Largest |live - shipped| over every number of the rows of ``live`` (downstream metrics and
    per-layer measures), matched to ``shipped`` by (model, stage). KeyError if a row has no twin."""
    table = {(r["model"], r["stage"]): r for r in shipped}
    worst = 0.0
    for r in live:
        twin = table[(r["model"], r["stage"])]
        for k, v in r.items():
            if isinstance(v, float):
                worst = max(worst, abs(v - twin[k]))
        for a, b in zip(r.get("layers", []), twin.get("layers", [])):
            worst = max(worst, *(abs(a[k] - b[k]) for k in a if k != "layer"))
    return worst


def run(out: Path = RESULTS, config: dict | None = None, models=("Othello GPT", "MiniLM"), progress: bool = True) -> dict:
    """Train and measure both models (see the module docstring); writes the state files beside ``out``."""
    import transformers

    cfg = {**CONFIG, **(config or {})}
    torch.set_num_threads(1)
    torch.manual_seed(cfg["seed"])
    start = time.perf_counter()
    result = {"what": "linearizing the Othello GPT and all-MiniLM-L6-v2: swap, attention transfer, "
                      "sliding-window hybrid, LoRA", "rebuild": REBUILD, "config": cfg, "stages": STAGES,
              "diagnostics": DIAGNOSTICS, "commit": git_commit(__file__), "torch": torch.__version__,
              "transformers": transformers.__version__, "training": {}, "rows": []}
    for name in models:
        task = (othello_task if name == "Othello GPT" else minilm_task)(cfg.get(name))
        states, info = train_model(task, cfg, progress=progress, log=lambda s: print(s, flush=True))
        torch.save(states, Path(out).parent / STATE_FILES[name])
        result["training"][name] = info
        result["rows"] += evaluate(task, states, cfg)
        print(f"{name}: done at {time.perf_counter() - start:.0f} s", flush=True)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def load_results(path: str | Path = RESULTS) -> dict:
    """The shipped results (the module docstring names the command that rebuilds them)."""
    return read_results(path, REBUILD)


def load_states(model: str, folder: str | Path | None = None) -> dict:
    """The shipped trained parameters of every stage of ``model`` ("Othello GPT" or "MiniLM")."""
    if model not in STATE_FILES:
        raise ValueError(f"model must be one of {list(STATE_FILES)}; got {model!r}")
    path = Path(folder or RESULTS.parent) / STATE_FILES[model]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it: {REBUILD}")
    return torch.load(path, map_location="cpu", weights_only=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--models", nargs="+", default=["Othello GPT", "MiniLM"])
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny budgets (not for shipping)")
    args = parser.parse_args(argv)
    config = None
    if args.quick:
        config = {"transfer": {"steps": 5, "lr": 1e-2},
                  "Othello GPT": {**CONFIG["Othello GPT"], "n_train_games": 256, "lora_steps": 3, "n_eval_games": 100,
                                  "layer_games": 20, "folds": 2},
                  "MiniLM": {**CONFIG["MiniLM"], "lora_steps": 2, "per_pair": 12}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = run(args.out, config, models=tuple(args.models))
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
