"""Ranking metrics against cases computed by hand."""

from __future__ import annotations

import math

import pytest

from evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k, score_all


def test_ndcg_one_relevant_at_rank_three():
    # DCG = 1/log2(4) = 0.5; ideal DCG = 1/log2(2) = 1
    assert ndcg_at_k(["a", "b", "c"], {"c": 1}) == pytest.approx(0.5)


def test_ndcg_two_relevant_at_ranks_one_and_three():
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(["x", "q", "y"], {"x": 1, "y": 1}) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["x", "q", "y"], {"x": 1, "y": 1}) == pytest.approx(0.9197, abs=1e-4)


def test_ndcg_graded_and_cut_at_k():
    # gains 2 at rank 2, the grade-1 doc is beyond k=2; ideal order is 2, 1
    value = ndcg_at_k(["n", "g2", "g1"], {"g2": 2, "g1": 1}, k=2)
    assert value == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_recall_and_mrr():
    ranking = ["a", "b", "c", "d"]
    qrels = {"b": 1, "d": 1, "z": 1}
    assert recall_at_k(ranking, qrels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, qrels, 100) == pytest.approx(2 / 3)
    assert mrr_at_k(ranking, qrels) == pytest.approx(0.5)
    assert mrr_at_k(ranking, {"z": 1}) == 0.0
    assert recall_at_k(ranking, {"a": 0}, 10) == 0.0  # relevance 0 is not relevant


def test_score_all_averages_over_judged_queries_and_counts_missing_rankings_as_zero():
    scores = score_all({"q1": ["a"], "q2": ["x"]}, {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}})
    assert scores["ndcg@10"] == pytest.approx(1 / 3)
    assert scores["mrr@10"] == pytest.approx(1 / 3)
    assert scores["recall@100"] == pytest.approx(1 / 3)
