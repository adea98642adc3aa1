"""How Recall ranks memories for a query (plain functions over plain data).

Two signals, each normalized to 0..1 within the profile's candidates, then
fused with fixed weights:

- lexical: the query's content words (stopwords dropped, any word may match)
  found by the database's full-text index (SQLite FTS5, PostgreSQL tsvector)
  and ranked by BM25 over the profile's memories (SQLite; see `bm25`) or
  ts_rank_cd (PostgreSQL), divided by the best rank of the query, so the best
  keyword match scores 1;
- semantic: cosine similarity of MiniLM vectors, mapped from the range where
  related texts fall (SEMANTIC_FLOOR .. SEMANTIC_CEILING) onto 0..1.

A memory that shares no word with the query is found by meaning alone; an
exact match of a rare word keeps the lexical half's full weight, so vaguely
similar text does not drown it. The weights and bounds were tuned on LoCoMo
(bench/recall_quality.py; docs/benchmarks.md)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping

import numpy as np
import snowballstemmer

LEXICAL_WEIGHT = 0.5
SEMANTIC_WEIGHT = 0.5
SEMANTIC_FLOOR = 0.15
SEMANTIC_CEILING = 0.75
MAX_TERMS = 32

_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "tell",
        "told",
        "say",
        "said",
        "please",
        "know",
    ]
)


def query_terms(query: str) -> list[str]:
    """The query's content words: lowercased, stopwords and one-letter words
    dropped, each once, in order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if len(word) > 1 and word not in STOPWORDS:
            seen.setdefault(word, None)
        if len(seen) >= MAX_TERMS:
            break
    return list(seen)


# The stemmer SQLite's FTS5 `porter` tokenizer applies (the original Porter algorithm).
_STEMMER = snowballstemmer.stemmer("porter")
BM25_K1 = 1.2
BM25_B = 0.75


def _folded(text: str) -> str:
    """Lowercase without diacritics, as FTS5's unicode61 tokenizer reads text."""
    if text.isascii():  # the common case, and 20x faster
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def bm25(terms: list[str], docs: Mapping[str, str], total_docs: int) -> dict[str, float]:
    """Okapi BM25 of `docs` (the profile's memories the full-text index
    matched) for the query's terms, with the profile's own statistics: the
    profile is the corpus (`total_docs` memories), so a word common in this
    profile counts for little even if it is rare in the store.

    (SQLite's bm25() would count each term's documents across the whole
    store's index on every query: 18 ms at a million memories. Here only the
    profile's matched rows are read.)"""
    wanted = {_STEMMER.stemWord(_folded(t)) for t in terms}
    # Porter only changes a word's ending (the last letter of a short one at
    # most): words are stemmed only when they begin like a wanted stem, which
    # most words of a memory do not.
    starts = {stem[:2] if len(stem) <= 3 else stem[:3] for stem in wanted}
    cache: dict[str, str] = {}
    counts: dict[str, Counter[str]] = {}
    lengths: dict[str, int] = {}
    for key, text in docs.items():
        words = _WORD.findall(_folded(text))
        lengths[key] = len(words)
        found: Counter[str] = Counter()
        for word in words:
            if word[:3] in starts or word[:2] in starts:
                stem = cache.get(word)
                if stem is None:
                    stem = cache[word] = _STEMMER.stemWord(word)
                if stem in wanted:
                    found[stem] += 1
        if found:
            counts[key] = found
    if not counts:
        return {}
    average = sum(lengths.values()) / max(len(lengths), 1)
    df: Counter[str] = Counter(stem for found in counts.values() for stem in found)
    total = max(total_docs, len(docs))
    idf = {stem: math.log(1 + (total - n + 0.5) / (n + 0.5)) for stem, n in df.items()}
    scores = {}
    for key, found in counts.items():
        norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[key] / max(average, 1e-9))
        scores[key] = sum(
            idf[stem] * tf * (BM25_K1 + 1) / (tf + norm) for stem, tf in found.items()
        )
    return scores


def fts5_query(profile_id: str, terms: list[str]) -> str:
    """An FTS5 MATCH expression: the profile's own rows, any of the terms.
    Terms are letters and digits only, quoted, so no FTS5 syntax can ride in on them."""
    suffix = profile_id.rsplit("_", 1)[-1]
    any_term = " OR ".join(f'"{t}"' for t in terms)
    return f'profile_id : "{suffix}" AND content : ({any_term})'


def pg_tsquery(terms: list[str]) -> str:
    """A to_tsquery('english', ...) text: any of the terms."""
    return " | ".join(f"'{t}'" for t in terms)


def normalized_lexical(scores: Mapping[str, float]) -> dict[str, float]:
    best = max(scores.values(), default=0.0)
    if best <= 0:
        return {}
    return {key: value / best for key, value in scores.items() if value > 0}


def normalized_semantic(similarities: np.ndarray) -> np.ndarray:
    span = SEMANTIC_CEILING - SEMANTIC_FLOOR
    scaled: np.ndarray = np.clip((similarities - SEMANTIC_FLOOR) / span, 0.0, 1.0)
    return scaled


def fuse(
    lexical: Mapping[str, float], semantic: Mapping[str, float], *, semantic_on: bool
) -> dict[str, float]:
    """One 0..1 score per memory. Without vectors, the lexical score alone."""
    if not semantic_on:
        return dict(lexical)
    keys = set(lexical) | set(semantic)
    return {
        key: LEXICAL_WEIGHT * lexical.get(key, 0.0) + SEMANTIC_WEIGHT * semantic.get(key, 0.0)
        for key in keys
    }
