"""How Recall ranks memories for a query (plain functions over plain data).

Two signals, each normalized to 0..1 within the profile's candidates, then
fused with fixed weights:

- lexical: the database's full-text rank (SQLite FTS5 bm25, PostgreSQL
  ts_rank_cd) of the query's content words (stopwords dropped, any word may
  match), divided by the best rank of the query, so the best keyword match
  scores 1;
- semantic: cosine similarity of MiniLM vectors, mapped from the range where
  related texts fall (SEMANTIC_FLOOR .. SEMANTIC_CEILING) onto 0..1.

A memory that shares no word with the query is found by meaning alone; an
exact match of a rare word keeps the lexical half's full weight, so vaguely
similar text does not drown it. The weights and bounds were tuned on LoCoMo
(bench/recall_quality.py; docs/benchmarks.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

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
