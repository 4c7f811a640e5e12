"""mnist-captions: every caption says what is where in its image, the held-out digit/place pairs
never reach the training split, and bad options are one-line errors."""

from __future__ import annotations

import pytest
import torch

from rnnimg.data import load_dataset
from rnnimg.data.mnist_captions import (
    PLACES,
    RELATIONS,
    VOCABULARY,
    detokenize,
    heldout_place,
    place_box,
    tokenize,
)
from rnnimg.errors import RnnImgError


def ink_outside(image, places):
    """Ink outside the 28x28 cells of ``places``, and the ink inside each of them."""
    inside = torch.zeros_like(image[0], dtype=torch.bool)
    per_cell = []
    for place in places:
        y, x = place_box(place)
        inside[y:y + 28, x:x + 28] = True
        per_cell.append(float(image[0, y:y + 28, x:x + 28].sum()))
    return float(image[0][~inside].sum()), per_cell


def test_captions_describe_their_images():
    data = load_dataset("mnist-captions", "train", train_size=300)
    relations = {"above": (-1, 0), "below": (1, 0), "to the left of": (0, -1), "to the right of": (0, 1)}
    seen_two = 0
    for i in range(len(data)):
        item = data[i]
        caption = detokenize(item["text"])
        digits, places = item["digits"].tolist(), item["places"].tolist()
        outside, per_cell = ink_outside(item["image"], [p for p in places if p >= 0])
        assert outside == 0 and min(per_cell) > 10  # the two cells of a pair never overlap
        if digits[1] < 0:
            assert caption.startswith(f"the digit {digits[0]} is ")
            assert caption.endswith(PLACES[places[0]])
        else:
            seen_two += 1
            relation = next(r for r in RELATIONS if f" is {r} a " in caption)
            assert caption == f"a {digits[0]} is {relation} a {digits[1]}"
            (r0, c0), (r1, c1) = divmod(places[0], 3), divmod(places[1], 3)
            dy, dx = relations[relation]
            assert (r0 - r1) * dy > 0 or (c0 - c1) * dx > 0
            assert (dy == 0 or c0 == c1) and (dx == 0 or r0 == r1)
    assert 100 < seen_two < 200


def test_heldout_pairs_stay_out_of_training():
    train = load_dataset("mnist-captions", "train", train_size=2000)
    for i in range(len(train)):
        digits, places = train.recipe(i)[1:3]
        if len(digits) == 1:
            assert places[0] != heldout_place(digits[0])
    heldout = load_dataset("mnist-captions", "test", test_size=50, combinations="heldout")
    assert all(heldout[i]["places"][0] == heldout_place(int(heldout[i]["digits"][0]))
               for i in range(50))
    both = load_dataset("mnist-captions", "test", test_size=40)
    flags = [len(both.recipe(i)[1]) == 1 and both.recipe(i)[2][0] == heldout_place(both.recipe(i)[1][0])
             for i in range(40)]
    assert all(flags[::4]) and sum(flags) < 20
    assert {heldout_place(d) for d in range(10)} == set(range(9))  # every place stays seen with others


def test_items_are_fixed_and_binarization_is_fixed():
    a = load_dataset("mnist-captions", "test", test_size=5, binarize="fixed")
    b = load_dataset("mnist-captions", "test", test_size=5, binarize="fixed")
    for i in range(5):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["text"], b[i]["text"])
        assert set(a[i]["image"].unique().tolist()) <= {0.0, 1.0}
    other = load_dataset("mnist-captions", "test", test_size=5, seed=1)
    assert any(not torch.equal(a[i]["text"], other[i]["text"]) for i in range(5))


def test_tokenize_round_trip_and_errors():
    ids = tokenize("A 3 is to the right of a 5.")
    assert ids.shape == (9,) and detokenize(ids) == "a 3 is to the right of a 5"
    assert ids.max() <= len(VOCABULARY)
    with pytest.raises(RnnImgError, match="empty"):
        tokenize(" . ")
    with pytest.raises(RnnImgError, match="'seven'.*knows only"):
        tokenize("the digit seven is at the top")
    with pytest.raises(RnnImgError, match="at most 9"):
        tokenize("a 3 is to the right of a 5 to a 1")


@pytest.mark.parametrize("options,words", [
    (dict(image_size=28), "image_size=60"),
    (dict(channels=3), "channels=1"),
    (dict(combinations="rare"), "combinations"),
    (dict(test_size=0), "test_size"),
])
def test_bad_options(options, words):
    with pytest.raises(RnnImgError, match=words):
        load_dataset("mnist-captions", "test", **options)
    with pytest.raises(RnnImgError, match="held-out"):
        load_dataset("mnist-captions", "train", combinations="heldout")
