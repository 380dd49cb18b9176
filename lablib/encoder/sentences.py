"""The labelled sentence set: sentiment (the concept) crossed with topic (the bystander).

Every sentence is ``frame(subject + predicate)``: the *subject* fixes the topic (food, travel,
work, weather), the *predicate* fixes the sentiment (positive / negative), and the *frame*
("Honestly, ...", "Yesterday ...") only adds variety. The predicates come in matched pairs
("was wonderful" / "was awful", "made my day" / "ruined my day"), and every predicate can follow
every subject, so sentiment and topic are independent by construction: every (topic, sentiment,
predicate pair) holds the same number of sentences (8), drawn without replacement from its
8 subjects x 6 frames by a seeded generator; 768 sentences in all. The predicate pair is stored
too, so that a split can hold out whole phrasings ("was excellent" never seen in training) and
ask whether a probe learned *sentiment* or a list of words.

The shipped file ``lablib/encoder/data/sentences.json`` is the output of
``python -m lablib.encoder.sentences`` (``make_sentences()`` with its defaults); the tests check
that the two agree, so the file can be read without trusting it.

Also here: ``calendar_prompts``, day and month names in a few templates, for the circular-feature
experiment (``lablib.encoder.circular``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATA_FILE",
    "DAYS",
    "FRAMES",
    "MONTHS",
    "NEGATIVE",
    "POSITIVE",
    "SENTIMENTS",
    "SUBJECTS",
    "TOPICS",
    "SentenceSet",
    "calendar_prompts",
    "dumps",
    "load_sentences",
    "make_sentences",
]

DATA_FILE = Path(__file__).resolve().parent / "data" / "sentences.json"

TOPICS = ("food", "travel", "work", "weather")
SENTIMENTS = ("negative", "positive")  # label 0, label 1

SUBJECTS = {
    "food": (
        "the soup", "the pasta at lunch", "dinner at the new bistro", "the morning coffee",
        "the birthday cake", "the curry", "the breakfast buffet", "the fresh bread",
    ),
    "travel": (
        "the flight to Lisbon", "the train journey", "our hotel room", "the road trip",
        "the ferry crossing", "the airport transfer", "the guided tour", "the weekend in the mountains",
    ),
    "work": (
        "the team meeting", "the quarterly review", "my new project", "the job interview",
        "the office move", "the client presentation", "the deadline week", "the training workshop",
    ),
    "weather": (
        "the weather", "the morning fog", "the afternoon rain", "the forecast for Sunday",
        "the summer heat", "the thunderstorm", "the first snowfall", "the wind on the coast",
    ),
}

# Matched pairs: POSITIVE[i] and NEGATIVE[i] differ only in their sentiment.
POSITIVE = (
    "was wonderful", "was lovely", "made my day", "was a real delight", "went better than I hoped",
    "left me smiling", "was fantastic", "felt just right", "was a pleasant surprise",
    "cheered everyone up", "was excellent", "put me in a great mood",
)
NEGATIVE = (
    "was awful", "was dreadful", "ruined my day", "was a real letdown", "went worse than I feared",
    "left me frustrated", "was terrible", "felt all wrong", "was an unpleasant surprise",
    "annoyed everyone", "was miserable", "put me in a foul mood",
)

FRAMES = (
    "{}.", "Honestly, {}.", "I have to say {}.", "Yesterday {}.", "As expected, {}.", "My friend said {}.",
)

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)

# Calendar templates: "{}" is the day or month name. The preposition differs (on Monday, in May).
DAY_TEMPLATES = (
    "{}", "It happened on {}.", "See you on {}.", "The shop is closed on {}.",
    "{} is my favourite day.", "We will meet again next {}.",
)
MONTH_TEMPLATES = (
    "{}", "It happened in {}.", "See you in {}.", "The shop is closed in {}.",
    "{} is my favourite month.", "We will meet again next {}.",
)


@dataclass(frozen=True)
class SentenceSet:
    """Sentences with their labels, all tuples of length n.

    ``texts``: the strings. ``sentiment``: 0 = negative, 1 = positive (``SENTIMENTS``).
    ``topic``: index into ``TOPICS``. ``pair``: index of the predicate pair (``POSITIVE[pair]`` or
    ``NEGATIVE[pair]``, by sentiment), so a split can hold out whole sentiment phrasings.
    ``subject``: index into ``SUBJECTS[TOPICS[topic]]``. ``frame``: index into ``FRAMES``.
    """

    texts: tuple[str, ...]
    sentiment: tuple[int, ...]
    topic: tuple[int, ...]
    pair: tuple[int, ...]
    subject: tuple[int, ...]
    frame: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def to_json(self) -> dict:
        return {
            "description": "sentiment: 0 negative, 1 positive; topic: index into topics; pair: predicate "
            "pair index; subject: index into the topic's subjects; frame: index into frames. "
            "Generated by python -m lablib.encoder.sentences",
            "topics": list(TOPICS),
            "sentiments": list(SENTIMENTS),
            "frames": list(FRAMES),
            "sentences": [
                {"text": t, "sentiment": s, "topic": c, "pair": p, "subject": j, "frame": f}
                for t, s, c, p, j, f in zip(self.texts, self.sentiment, self.topic, self.pair, self.subject, self.frame)
            ],
        }


def _sentence(frame: str, subject: str, predicate: str) -> str:
    s = frame.format(f"{subject} {predicate}")
    return s[0].upper() + s[1:]


def make_sentences(per_pair: int = 8, seed: int = 0) -> SentenceSet:
    """``per_pair`` sentences for every (topic, sentiment, predicate pair): 4 x 2 x 12 x per_pair
    in all (768 with the default 8), balanced in topic, sentiment and predicate pair.

    Each (topic, sentiment, pair) draws ``per_pair`` distinct (subject, frame) combinations out of
    8 x 6 = 48 with ``random.Random(seed)``, so the set is deterministic. The rows are interleaved
    so that any prefix is nearly balanced. Raises ``ValueError`` unless ``per_pair`` is an int in
    [1, 48].
    """
    n_combos = len(SUBJECTS["food"]) * len(FRAMES)
    if not isinstance(per_pair, int) or isinstance(per_pair, bool) or not 1 <= per_pair <= n_combos:
        raise ValueError(f"per_pair must be an int in [1, {n_combos}]; got {per_pair!r}")
    rng = random.Random(seed)
    groups = []
    for ti, topic in enumerate(TOPICS):
        for si, predicates in enumerate((NEGATIVE, POSITIVE)):
            for pi, predicate in enumerate(predicates):
                combos = [(j, f) for j in range(len(SUBJECTS[topic])) for f in range(len(FRAMES))]
                groups.append([
                    (_sentence(FRAMES[f], SUBJECTS[topic][j], predicate), si, ti, pi, j, f)
                    for j, f in rng.sample(combos, per_pair)
                ])
    rows = [group[i] for i in range(per_pair) for group in groups]
    return SentenceSet(*(tuple(col) for col in zip(*rows)))


def dumps(sentences: SentenceSet) -> str:
    """The JSON text of the shipped file: header fields first, then one sentence per line."""
    data = sentences.to_json()
    rows = data.pop("sentences")
    head = json.dumps(data, ensure_ascii=False)[:-1]
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
    return f'{head}, "sentences": [\n{body}\n]}}\n'


def load_sentences(path: str | Path = DATA_FILE) -> SentenceSet:
    """The shipped sentence set: 768 sentences, 8 per (topic, sentiment, predicate pair)."""
    data = json.loads(Path(path).read_text())
    rows = data["sentences"]
    fields = ("text", "sentiment", "topic", "pair", "subject", "frame")
    return SentenceSet(*(tuple(r[k] for r in rows) for k in fields))


def calendar_prompts(kind: str) -> tuple[tuple[str, ...], list[list[str]]]:
    """``(names, prompts)`` for ``kind`` in {"days", "months"}: ``prompts[i]`` is the list of
    templates filled with ``names[i]`` (the first template is the bare name)."""
    if kind == "days":
        names, templates = DAYS, DAY_TEMPLATES
    elif kind == "months":
        names, templates = MONTHS, MONTH_TEMPLATES
    else:
        raise ValueError(f"kind must be 'days' or 'months'; got {kind!r}")
    return names, [[t.format(name) for t in templates] for name in names]


if __name__ == "__main__":
    sentences = make_sentences()
    DATA_FILE.parent.mkdir(parents=True, exist_ok=True)
    DATA_FILE.write_text(dumps(sentences))
    print(f"wrote {len(sentences)} sentences to {DATA_FILE}")
