"""lablib.world: token encoding, per-position labels, the small GPT's shapes and causality, and a
few training steps (fast: tiny models, a handful of games)."""

import pytest
import torch

from lablib.world.activations import cache_residuals, probe_dataset
from lablib.world.data import (
    BLACK_SQ,
    EMPTY,
    MAX_LEN,
    MINE,
    N_MOVES,
    PAD,
    THEIRS,
    VOCAB_SIZE,
    WHITE_SQ,
    decode,
    encode,
    games_to_tokens,
    heldout_games,
    label_games,
    make_games,
)
from lablib.world.model import GPT, GPTConfig
from lablib.world.othello import BLACK, PLAYABLE, replay
from lablib.world.train import legal_move_metrics, next_move_loss, train


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(n_layer=2):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB_SIZE, n_layer=n_layer, d_model=32, n_head=4, d_mlp=64))


def test_token_encoding_roundtrip():
    games = make_games(20, seed=0)
    tok = games_to_tokens(games)
    assert tok.shape == (20, MAX_LEN) and tok.dtype == torch.long
    assert VOCAB_SIZE == N_MOVES + 1 == 33 and PAD == 32
    for g, row in zip(games, tok):
        assert decode(row.tolist()) == g
        assert row[len(g):].eq(PAD).all()
    assert sorted(encode(PLAYABLE)) == list(range(N_MOVES))


def test_games_reproducible_from_seed():
    assert make_games(50, seed=7) == make_games(50, seed=7)
    assert make_games(50, seed=7) != make_games(50, seed=8)
    assert heldout_games(30) == heldout_games(30)
    train_set = {tuple(g) for g in make_games(1000, seed=0)}
    assert not any(tuple(g) in train_set for g in heldout_games(200))


def test_labels_match_the_engine():
    games = make_games(30, seed=2)
    lab = label_games(games)
    for n, g in enumerate(games):
        states = replay(g)[1:]  # position t = after move t
        assert lab.lengths[n] == len(g)
        assert lab.valid[n].sum() == len(g) and lab.has_next[n].sum() == len(g) - 1
        for t, st in enumerate(states):
            board = torch.from_numpy(st.board().reshape(-1)).long()
            bw = torch.where(board == 1, BLACK_SQ, torch.where(board == -1, WHITE_SQ, EMPTY))
            assert torch.equal(lab.board_bw[n, t], bw)
            assert lab.to_move[n, t] == st.to_move
            me = 1 if st.to_move == BLACK else -1
            mt = torch.where(board == me, MINE, torch.where(board == -me, THEIRS, EMPTY))
            assert torch.equal(lab.board_mt[n, t], mt)
            assert decode(lab.legal[n, t].nonzero().flatten().tolist()) == st.legal_moves()
            if t + 1 < len(g):  # the move actually played next is legal
                assert lab.legal[n, t, encode([g[t + 1]])[0]]


def test_model_forward_shapes_and_residuals():
    model = tiny(n_layer=3)
    tok = games_to_tokens(make_games(5, seed=0))
    logits, res = model(tok, return_residuals=True)
    assert logits.shape == (5, MAX_LEN, VOCAB_SIZE)
    assert len(res) == 4 and all(r.shape == (5, MAX_LEN, 32) for r in res)
    assert torch.equal(model(tok), logits)
    assert torch.allclose(model.unembed(model.ln_final(res[-1])), logits)


def test_model_is_causal():
    model = tiny()
    tok = games_to_tokens(make_games(2, seed=0))
    changed = tok.clone()
    changed[:, 10:] = (changed[:, 10:] + 5) % N_MOVES
    a, b = model(tok), model(changed)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_a_few_training_steps_reduce_the_loss():
    tok = games_to_tokens(make_games(64, seed=0))
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = next_move_loss(model, tok).item()
    for _ in range(20):
        loss = next_move_loss(model, tok)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert next_move_loss(model, tok).item() < first - 0.3


def test_train_function_and_metrics_run():
    model, info = train(n_games=200, steps=4, batch_size=16, eval_games=20, eval_every=2, progress=False,
                        log=lambda s: None, cfg=GPTConfig(vocab_size=VOCAB_SIZE, n_layer=1, d_model=32, d_mlp=64))
    assert len(info["history"]) == 2
    m = info["heldout_metrics"]
    assert 0 <= m["topk_exact"] <= m["top1_legal"] <= 1 and 0 < m["legal_mass"] < 1


def test_metrics_of_a_perfect_predictor():
    """Logits that put equal mass on exactly the legal moves score 1 on every metric."""
    lab = label_games(heldout_games(20))

    class Oracle(torch.nn.Module):  # all 20 games fit in one evaluation batch
        def forward(self, idx):
            logits = torch.where(lab.legal[:, : idx.shape[1]], 0.0, -30.0)
            return torch.cat([logits, torch.full((*logits.shape[:2], 1), -30.0)], -1)

    m = legal_move_metrics(Oracle(), lab)
    assert m["top1_legal"] == m["topk_exact"] == m["threshold_exact"] == 1.0
    assert m["legal_mass"] > 0.999


def test_activation_cache_shapes():
    model = tiny(n_layer=2)
    games = make_games(10, seed=3)
    tok = games_to_tokens(games)
    res = cache_residuals(model, tok, batch_size=4)
    assert res.shape == (3, 10, MAX_LEN, 32)
    data = probe_dataset(model, games, batch_size=4)
    P = sum(len(g) for g in games)
    assert len(data) == P and data.acts.shape == (3, P, 32)
    assert data.board_bw.shape == data.board_mt.shape == (P, 36) and data.legal.shape == (P, N_MOVES)
    # the cached stream at (game, position) is the one the model computes there
    i = 17
    assert torch.allclose(data.acts[:, i], res[:, data.game[i], data.position[i]])
    train_part, test_part = data.split(0.8)
    assert len(train_part) + len(test_part) == P
    assert set(train_part.game.tolist()).isdisjoint(test_part.game.tolist())
