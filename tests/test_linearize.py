"""lablib.linearize: each stage on tiny models, in seconds.

* a linearized layer whose window covers the sequence is softmax attention (float64, 1e-12), for
  the GPT (causal) and a tiny BERT (bidirectional, with padding);
* with no window its linear part equals lablib.attention.linear's reference;
* attention transfer lowers the transfer loss (both losses);
* LoRA starts equal to its base, trains only A and B, and leaves the base weights unchanged;
* input checks raise ValueError.
"""

from __future__ import annotations

import pytest
import torch

from lablib.attention.linear import linear_attention_reference
from lablib.linearize import (
    FULL_WINDOW,
    LinearizedAttention,
    add_lora,
    attention_inputs,
    attention_transfer,
    hybrid_weights,
    linearize,
    linearized_layers,
    lora_finetune,
    lora_parameters,
    lora_targets,
    softmax_weights,
    transfer_loss,
)
from lablib.linearize.lora import LoRALinear
from lablib.world.model import GPT, GPTConfig

torch.set_num_threads(1)


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=9, block_size=12, n_layer=2, n_head=2, d_model=16, d_mlp=32)).double().eval()
    with torch.no_grad():  # larger attention logits than the 0.02 init, so softmax is far from uniform
        for block in model.blocks:
            block.attn.qkv.weight.mul_(40)
    return model


def tiny_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    return BertModel(cfg).double().eval()


def tokens(n: int = 6, T: int = 11, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 8, (n, T), generator=torch.Generator().manual_seed(seed))


def bert_batch():
    ids = torch.randint(1, 30, (3, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


# --------------------------------------------------------------------------- the window covering everything


def test_full_window_is_softmax_gpt():
    gpt, idx = tiny_gpt(), tokens()
    student = linearize(gpt, window=FULL_WINDOW)
    torch.testing.assert_close(student(idx), gpt(idx), rtol=0, atol=1e-10)
    # and the layer alone: its weights are the softmax's, whatever the mixing factor
    layer = linearized_layers(student)[0]
    with torch.no_grad():
        layer.window_logit.fill_(-3.0)
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    q, k, _ = layer.project(x)
    torch.testing.assert_close(layer.weights(q, k), softmax_weights(q, k, causal=True), rtol=0, atol=1e-10)
    # a window of T covers a causal sequence of T tokens; T - 1 does not
    layer.window = 11
    torch.testing.assert_close(layer.weights(q, k), softmax_weights(q, k, causal=True), rtol=0, atol=1e-10)
    layer.window = 10
    assert (layer.weights(q, k) - softmax_weights(q, k, causal=True)).abs().max() > 1e-3


def test_full_window_is_softmax_bert_with_padding():
    bert, batch = tiny_bert(), bert_batch()
    student = linearize(bert, window=FULL_WINDOW)
    got, want = student(**batch).last_hidden_state, bert(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], rtol=0, atol=1e-10)
    # padding is respected: changing a padded token changes nothing real
    batch2 = {**batch, "input_ids": batch["input_ids"].clone()}
    batch2["input_ids"][2, 5] = 7
    torch.testing.assert_close(student(**batch2).last_hidden_state[real], got[real], rtol=0, atol=1e-12)


def test_linear_part_matches_the_linear_attention_reference():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    phi = torch.nn.functional.elu
    fq, fk = phi(q) + 1, phi(k) + 1
    for causal in (True, False):
        a = hybrid_weights(q, k, fq, fk, window=0, causal=causal)
        want = linear_attention_reference(q, k, v, feature_map="elu+1", causal=causal, eps=1e-12)
        torch.testing.assert_close(a @ v, want, rtol=1e-10, atol=1e-12)


def test_hybrid_window_and_drop_linear():
    g = torch.Generator().manual_seed(4)
    q, k = (torch.randn(1, 2, 6, 4, generator=g, dtype=torch.float64) for _ in range(2))
    fq, fk = torch.rand(1, 2, 6, 5, generator=g, dtype=torch.float64), torch.rand(1, 2, 6, 5, generator=g, dtype=torch.float64)
    a = hybrid_weights(q, k, fq, fk, window=2, gamma=torch.tensor([0.3, 0.9], dtype=torch.float64), causal=True)
    torch.testing.assert_close(a.sum(-1), torch.ones(1, 2, 6, dtype=torch.float64))
    assert (a.triu(1) == 0).all()  # causal
    # row 5: keys 4, 5 in the window with softmax weights in ratio exp(s), the rest linear
    s = q[0, 0, 5] @ k[0, 0].T / 2
    assert torch.isclose(a[0, 0, 5, 4] / a[0, 0, 5, 5], torch.exp(s[4] - s[5]))
    lin = fq[0, 0, 5] @ fk[0, 0].T
    assert torch.isclose(a[0, 0, 5, 0] / a[0, 0, 5, 1], lin[0] / lin[1])
    # dropping the linear part leaves sliding-window softmax
    w = hybrid_weights(q, k, None, None, window=2, causal=True, drop_linear=True)
    band = torch.ones(6, 6, dtype=torch.bool).tril() & ~torch.ones(6, 6, dtype=torch.bool).tril(-2)
    scores = (q @ k.transpose(-1, -2) / 2).masked_fill(~band, float("-inf"))
    torch.testing.assert_close(w, scores.softmax(-1), rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- attention transfer


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_attention_transfer_lowers_the_transfer_loss(loss):
    gpt = tiny_gpt()
    batches = [tokens(8, 11, seed) for seed in range(3)]
    inputs = attention_inputs(gpt, lambda m: [m(b) for b in batches])
    assert len(inputs) == 2 and inputs[0][0][0].shape == (8, 11, 16)
    student = linearize(gpt, window=0)
    rows = attention_transfer(linearized_layers(student), inputs, loss=loss, steps=60, lr=3e-2, progress=False)
    for r in rows:
        assert r["loss_after"] < 0.7 * r["loss_before"], r
    # only the feature maps moved: the projections are still the teacher's
    torch.testing.assert_close(linearized_layers(student)[0].q.weight, gpt.blocks[0].attn.qkv.weight[:16])


def test_transfer_on_bert_with_padding_and_the_window_factor():
    bert, batch = tiny_bert(), bert_batch()
    inputs = attention_inputs(bert, lambda m: m(**batch))
    x, allowed = inputs[0][0]
    assert allowed.shape == (3, 1, 9, 9) and not allowed[2, 0, 0, 4]
    student = linearize(bert, window=2)
    layers = linearized_layers(student)
    before = [layer.window_logit.clone() for layer in layers]
    rows = attention_transfer(layers, inputs, loss="mse", steps=40, lr=3e-2, progress=False)
    assert all(r["loss_after"] < r["loss_before"] for r in rows), rows
    assert any((layer.window_logit - b).abs().max() > 0 for layer, b in zip(layers, before))
    assert torch.isfinite(transfer_loss(layers[0], x, allowed, "ce"))


# --------------------------------------------------------------------------- LoRA


def test_lora_starts_at_base_trains_only_adapters_and_keeps_base_weights():
    gpt = tiny_gpt()
    student = linearize(gpt, window=3)
    base = {n: p.clone() for n, p in student.named_parameters()}
    idx = tokens()
    before = student(idx)
    targets = lora_targets(student)
    assert targets[:4] == ["blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.attn.out"]
    modules = add_lora(student, targets, rank=2, alpha=4.0)
    torch.testing.assert_close(student(idx), before, rtol=0, atol=0)  # B = 0
    params = lora_parameters(student)
    assert len(params) == 2 * len(targets)

    from lablib.world.train import next_move_loss

    losses = lora_finetune(student, lambda _s: next_move_loss(student, idx), steps=30, lr=1e-2, progress=False)
    assert losses[-1] < losses[0]
    assert not any(p.requires_grad for p in student.parameters())  # everything frozen again afterwards
    assert any(m.B.abs().max() > 0 for m in modules)
    after = dict(student.named_parameters())
    for name, value in base.items():  # every base weight kept its value (under its new name)
        new = name.replace(".attn.q.", ".attn.q.base.").replace(".attn.k.", ".attn.k.base.")
        new = new.replace(".attn.v.", ".attn.v.base.").replace(".attn.out.", ".attn.out.base.")
        torch.testing.assert_close(after[new], value, rtol=0, atol=0)
    m = modules[0]
    x = torch.randn(5, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x), x @ m.merged_weight().T + m.base.bias)


def test_lora_on_bert_targets_the_output_dense():
    student = linearize(tiny_bert(), window=0)
    targets = lora_targets(student)
    assert "encoder.layer.0.attention.output.dense" in targets and len(targets) == 8
    add_lora(student, targets, rank=2)
    assert isinstance(student.encoder.layer[1].attention.output.dense, LoRALinear)


# --------------------------------------------------------------------------- input checks


def test_input_checks():
    gpt = tiny_gpt()
    with pytest.raises(ValueError, match="GPT or a transformers BERT"):
        linearize(torch.nn.Linear(3, 3))
    layer = linearized_layers(linearize(gpt))[0]
    with pytest.raises(ValueError, match="d_model=16"):
        layer.project(torch.randn(2, 5, 8, dtype=torch.float64))
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="window"):
        hybrid_weights(q, q, q, q, window=-1, causal=True)
    with pytest.raises(ValueError, match="features"):
        hybrid_weights(q, q, None, None, window=2, causal=True)
    with pytest.raises(ValueError, match="bool mask"):
        hybrid_weights(q, q, q, q, window=0, causal=False, allowed=torch.ones(1, 1, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        softmax_weights(torch.randn(2, 5, 4), torch.randn(2, 5, 4), causal=True)
    with pytest.raises(ValueError, match="style"):
        LinearizedAttention(16, 2, style="rnn")
    with pytest.raises(ValueError, match="loss"):
        transfer_loss(layer, torch.randn(1, 4, 16, dtype=torch.float64), loss="kl")
    with pytest.raises(ValueError, match="nothing to train"):
        attention_transfer(linearized_layers(linearize(gpt, feature_map="elu+1")), [[(torch.randn(1, 4, 16), None)]] * 2,
                           steps=1, progress=False)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(torch.nn.Linear(4, 4), rank=5)
    with pytest.raises(ValueError, match="not an nn.Linear"):
        add_lora(gpt, ["blocks.0.ln_attn"])
    with pytest.raises(ValueError, match="not linearized"):
        lora_targets(gpt)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        lora_finetune(gpt, lambda _s: None, steps=1)


# --------------------------------------------------------------------------- the shipped run and the charts


def test_shipped_othello_stage_reproduces_its_results():
    from lablib.linearize.experiment import build_stage, load_results, load_states, othello_task

    results = load_results()
    task = othello_task({"n_eval_games": 1000}, train=False)
    shipped = {r["stage"]: r for r in results["rows"] if r["model"] == "Othello GPT"}
    model = build_stage(task, "hybrid", load_states("Othello GPT"))
    got = task.downstream(model)
    for key in ("top1_legal", "topk_exact", "legal_mass"):
        assert abs(got[key] - shipped["hybrid"][key]) < 1e-6, (key, got[key], shipped["hybrid"][key])
    assert shipped["hybrid"]["topk_exact"] > shipped["swap"]["topk_exact"] + 0.3


def test_tables_and_charts():
    from lablib.linearize.charts import layer_chart, share_chart
    from lablib.linearize.experiment import layer_frame, load_results, max_difference, stage_table

    results = load_results()
    table = stage_table(results["rows"], results["training"])
    teacher = table[table.stage == "teacher"]
    assert (teacher.share == 1.0).all() and (teacher.trainable == 0).all()
    lora = table[(table.stage == "hybrid+lora") & (table.model == "Othello GPT")]
    hybrid = table[(table.stage == "hybrid") & (table.model == "Othello GPT")]
    assert (lora.trainable.values > hybrid.trainable.values).all()
    assert max_difference(results["rows"], results["rows"]) == 0.0
    layers = layer_frame(results["rows"])
    layer_chart(layers, ["swap", "hybrid"]).to_dict()
    share_chart(table, {"topk_exact": "exact legal set", "cos_to_teacher": "cosine"}).to_dict()
    with pytest.raises(ValueError, match="lacks columns"):
        layer_chart(layers.drop(columns="hidden_cos"), ["swap"])
