"""Every metric against values worked out by hand (the arithmetic is in each test's comment)."""

from __future__ import annotations

import math

import pytest

from plinth.evals import agreement, cohen_kappa, paired_bootstrap, spearman
from plinth.evals.metrics import bleu, contains, exact_match, json_valid, normalize_text, rouge_l, token_f1


def test_normalization_drops_case_punctuation_and_articles() -> None:
    assert normalize_text("  The Godfather, Part II!  ") == "godfather part ii"


def test_exact_match_and_contains() -> None:
    assert exact_match("The Godfather!", "godfather") == 1.0
    assert exact_match("Godfather II", "Godfather") == 0.0
    assert contains("It was directed by Ridley Scott.", "ridley scott") == 1.0
    assert contains("A Scottish film", "Scott") == 0.0  # whole words only
    assert contains("anything", "") == 0.0


def test_token_f1() -> None:
    # output tokens {cat, sat, on, mat}, reference {cat, on, mat}: P = 3/4, R = 3/3, F1 = 2PR/(P+R) = 6/7
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    # repeated tokens count once per occurrence: out [red, red], ref [red]: common 1, P 1/2, R 1 -> 2/3
    assert token_f1("red red", "red") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("dog", "cat") == 0.0


def test_rouge_l() -> None:
    # LCS("the cat sat on the mat", "the cat is on the mat") = "the cat on the mat": 5 of 6 tokens each side
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS of "a b c d" (4) and "a c" (2) is "a c": P = 2/4, R = 2/2, F = 2/3
    assert rouge_l("a b c d", "a c") == pytest.approx(2 / 3)


def test_bleu() -> None:
    # hypothesis "the cat is on the mat" vs "the cat sat on the mat", equal lengths (BP = 1):
    # p1 = 5/6, p2 = 3/5 (the cat, on the, the mat), p3 = 1/4 (on the mat), p4 = 0/3 -> exp smoothing
    # gives 1 / (2 * 3); BLEU = (5/6 * 3/5 * 1/4 * 1/6) ** (1/4)
    expected = (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert bleu("the cat is on the mat", "the cat sat on the mat") == pytest.approx(expected, abs=1e-9)
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == 1.0
    # "the cat" (2 tokens) vs 6: orders 1-2 only (effective order), both precise; BP = exp(1 - 6/2)
    assert bleu("the cat", "the cat sat on the mat") == pytest.approx(math.exp(-2), abs=1e-9)


def test_json_valid() -> None:
    assert json_valid('{"a": 1}') == 1.0 and json_valid(" [1, 2] \n") == 1.0
    assert json_valid("{a: 1}") == 0.0 and json_valid("") == 0.0


def test_cohen_kappa_by_hand() -> None:
    # observed agreement 3/4; chance: rater A 1:1/2 2:1/2, rater B 1:1/4 2:3/4 -> 1/8 + 3/8 = 1/2
    # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    assert cohen_kappa([1, 1, 2, 2], [1, 2, 2, 2]) == pytest.approx(0.5)
    # quadratic weights, two raters swapping 1 and 2: observed weighted disagreement 2, expected 1 -> 1 - 2
    assert cohen_kappa([1, 2], [2, 1], weights="quadratic") == pytest.approx(-1.0)
    assert cohen_kappa([3, 3], [3, 3]) is None and cohen_kappa([1], [1]) is None


def test_spearman_by_hand() -> None:
    # ranks of b = [1, 2, 3.5, 5, 3.5]; centred x = -2..2, y = -2, -1, .5, 2, .5:
    # sum xy = 8, sum x^2 = 10, sum y^2 = 9.5 -> rho = 8 / sqrt(95)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_agreement_bundle() -> None:
    out = agreement([1, 1, 2, 2], [1, 2, 2, 2])
    assert out["n"] == 4 and out["cohen_kappa"] == pytest.approx(0.5)
    assert set(out) == {"n", "cohen_kappa", "weighted_kappa", "spearman"}


def test_paired_bootstrap_known_cases() -> None:
    constant = paired_bootstrap([0, 0, 0, 0], [1, 1, 1, 1])
    assert (constant["diff"], constant["ci_low"], constant["ci_high"]) == (1.0, 1.0, 1.0)
    assert constant["p_b_not_better"] == 0.0
    # differences [0, 1]: a resample's mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so the 95% interval
    # is [0, 1] and B fails to beat A in a quarter of resamples
    r = paired_bootstrap([0, 0], [0, 1], resamples=20_000, seed=3)
    assert r["diff"] == 0.5 and (r["ci_low"], r["ci_high"]) == (0.0, 1.0)
    assert r["p_b_not_better"] == pytest.approx(0.25, abs=0.015)


def test_paired_bootstrap_is_seeded() -> None:
    a, b = [0.1, 0.5, 0.3, 0.9, 0.2], [0.2, 0.4, 0.6, 0.9, 0.5]
    assert paired_bootstrap(a, b, seed=1) == paired_bootstrap(a, b, seed=1)
    r = paired_bootstrap(a, b, seed=1)
    assert r["ci_low"] <= r["diff"] <= r["ci_high"] and r["diff"] == pytest.approx(0.12)
