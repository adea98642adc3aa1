"""Recall's ranking rules as plain functions (no database, no model)."""

from __future__ import annotations

import numpy as np

from convmem.memories import ranking


def test_query_terms_keep_content_words_once() -> None:
    assert ranking.query_terms("What did the customer SAY about the refund, the REFUND?") == [
        "customer",
        "refund",
    ]
    assert ranking.query_terms("order 7731-XQ") == ["order", "7731", "xq"]
    assert ranking.query_terms("a I it") == []
    assert len(ranking.query_terms(" ".join(f"w{n}" for n in range(100)))) == ranking.MAX_TERMS


def test_full_text_queries_carry_only_quoted_words() -> None:
    terms = ranking.query_terms('refund" OR content:* NEAR(x) {profile_id}')
    query = ranking.fts5_query("mem_profile_01h455vb4pex5vsknk084sn02q", terms)
    assert query == (
        'profile_id : "01h455vb4pex5vsknk084sn02q" AND content : '
        '("refund" OR "content" OR "near" OR "profile" OR "id")'
    )
    assert ranking.pg_tsquery(["refund", "late"]) == "'refund' | 'late'"


def test_bm25_stems_and_prefers_rare_words() -> None:
    docs = {
        "common": "the order was late, the order was lost, order order",
        "rare": "the zylophone order",
        "stemmed": "Refunds were requested",
        "accents": "Visited the café",
    }
    scores = ranking.bm25(["order", "zylophone"], docs, total_docs=10)
    assert set(scores) == {"common", "rare"}
    assert scores["rare"] > scores["common"]  # one rare word beats a common one repeated
    assert set(ranking.bm25(["refund"], docs, 10)) == {"stemmed"}
    assert set(ranking.bm25(["cafe"], docs, 10)) == {"accents"}
    assert ranking.bm25(["absent"], docs, 10) == {}


def test_fusion_is_bounded_and_lexical_only_without_vectors() -> None:
    lexical = ranking.normalized_lexical({"a": 4.0, "b": 2.0, "c": 0.0})
    assert lexical == {"a": 1.0, "b": 0.5}
    semantic_raw = ranking.normalized_semantic(np.array([-0.2, 0.15, 0.45, 0.9]))
    assert np.allclose(semantic_raw, [0.0, 0.0, 0.5, 1.0])
    fused = ranking.fuse(lexical, {"a": 0.0, "d": 1.0}, semantic_on=True)
    assert fused == {"a": 0.5, "b": 0.25, "d": 0.5}
    assert all(0 <= v <= 1 for v in fused.values())
    assert ranking.fuse(lexical, {}, semantic_on=False) == lexical
