"""``python -m lablib.encoder``: print the encoder chapter's numbers (about 30 s, one thread)."""

import time

import torch

from lablib.encoder.circular import calendar_points, circle_stats
from lablib.encoder.experiments import erasure_layers, load_data, probe_layers, steering
from lablib.encoder.model import N_LAYERS


def _table(rows, keys):
    print("  ".join(f"{k:>22}" for k in keys))
    for r in rows:
        print("  ".join(f"{r[k]:>22.3f}" if isinstance(r[k], float) else f"{r[k]:>22}" for k in keys))


def main():
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_data()
    for kind in ("random", "phrasings"):
        print(f"\n== probes per layer, split: {kind}")
        _table(probe_layers(data, kind), ["layer", "sentiment_meandiff", "sentiment", "topic"])
        print(f"\n== LEACE (shrinkage) per layer, split: {kind}")
        _table(erasure_layers(data, kind), ["layer", "sentiment_before", "sentiment_after", "topic_before",
                                            "topic_after", "sentiment_before_2fold", "sentiment_after_2fold"])
    keys = ["alpha", "positive_probe", "positive_knn", "topic", "control_positive_probe", "control_positive_knn"]
    for layer in (3, N_LAYERS):
        print(f"\n== steering the pooled state of layer {layer} (negative test sentences)")
        _table(steering(data, layer), keys)
    print("\n== steering inside: add at layer 3 (every token), read out layer 6")
    _table(steering(data, 3, alphas=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0), inside=True), keys + ["control_topic"])
    print("\n== circles (top-2 PCA of the template-mean embeddings)")
    for kind in ("days", "months"):
        for layer in range(N_LAYERS + 1):
            names, points = calendar_points(kind, layer)
            s = circle_stats(points)
            ring = " ".join(names[i][:3] for i in torch.argsort(s["angles"]).tolist())
            print(f"{kind:6} layer {layer}: adjacent {s['adjacent']:2}/{s['n']}, p {s['p_value']:.4f}, "
                  f"radius cv {s['radius_cv']:.2f}, wrap ratio {s['wrap_ratio']:.2f}, "
                  f"r cyclic {s['r_cyclic']:.2f} vs linear {s['r_linear']:.2f}, var kept {s['explained']:.2f} | {ring}")
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
