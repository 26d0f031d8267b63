"""StopMatcher: stop strings are never released, even split across deltas or overlapping."""

import random

import pytest

from plinth.llm import StopMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    released = []
    for piece in pieces:
        text, matched = matcher.feed(piece)
        released.append(text)
        if matched:
            return "".join(released), True
    return "".join(released) + matcher.flush(), False


def reference(stops: list[str], text: str) -> tuple[str, bool]:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def test_stop_string_split_across_pieces_is_held_back_then_cut():
    matcher = StopMatcher(["</s>"])
    assert matcher.feed("Hello <") == ("Hello ", False)
    assert matcher.feed("/") == ("", False)
    assert matcher.feed("s> and more") == ("", True)


def test_held_text_is_released_when_it_stops_looking_like_a_stop_string():
    matcher = StopMatcher(["</s>"])
    assert matcher.feed("a <") == ("a ", False)
    assert matcher.feed("b") == ("<b", False)


def test_overlapping_partial_match():
    # "aa" is held; a third "a" proves the first one cannot start "aab", the fourth char completes it.
    matcher = StopMatcher(["aab"])
    assert [matcher.feed(c) for c in "aaab"] == [("", False), ("", False), ("a", False), ("", True)]


def test_earliest_of_several_stop_strings_wins():
    assert run(["world", "lo w"], ["hello", " world"]) == ("hel", True)
    assert run(["\n\n", "User:"], ["Sure.", "\nUser", ": hi"]) == ("Sure.\n", True)


def test_no_match_releases_everything_on_flush():
    assert run(["STOP"], ["ST", "O", "P-ish? no: STO"]) == ("", True)
    assert run(["STOP"], ["ST", "O", "p"]) == ("STOp", False)
    assert run([], ["anything"]) == ("anything", False)


@pytest.mark.parametrize("seed", range(20))
def test_matches_a_whole_string_reference_for_random_chunkings(seed):
    rng = random.Random(seed)
    stops = ["".join(rng.choices("ab", k=rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
    text = "".join(rng.choices("abc", k=rng.randint(0, 30)))
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 8))))
    pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert run(stops, pieces) == reference(stops, text)
