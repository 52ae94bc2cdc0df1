"""One Registry class behind every name -> thing table of the package."""

from __future__ import annotations

import pytest
import torch

from dldna.chapter_10 import clip, losses
from dldna.chapter_10.mm import cross_attention
from dldna.data import shapes
from dldna.registry import Registry, UnknownNameError


class _Custom(UnknownNameError):
    pass


def test_registry_keeps_order_and_rejects_a_second_entry_under_one_name():
    table: Registry[int] = Registry("number")
    table.register("one")(1)
    table.add("two", 2)
    assert list(table) == ["one", "two"] and table.names() == ("one", "two")
    assert table["two"] == 2 and table.get("one") == 1 and "one" in table and len(table) == 2
    assert table.items() == [("one", 1), ("two", 2)]
    table.add("one", 1)  # the same object again (a re-import) is harmless
    with pytest.raises(ValueError, match="'one' is registered twice"):
        table.add("one", 11)
    assert table["one"] == 1
    with pytest.raises(TypeError, match="non-empty string"):
        table.add("", 3)


def test_unknown_name_lists_the_known_ones():
    table: Registry[str] = Registry("colour", error=_Custom, sort_key=len)
    for name in ("green", "red", "blue"):
        table.add(name, name.upper())
    assert table.names() == ("red", "blue", "green")  # sort_key orders the listing
    with pytest.raises(_Custom) as info:
        table["purple"]
    assert str(info.value) == "Unknown colour 'purple'; known: red, blue, green."
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(_Custom):
        table.get(["unhashable"])


@pytest.mark.parametrize(
    ("table", "known"),
    [
        (cross_attention.REGISTRY, "v9"),
        (clip.POOLERS, "last"),
        (losses.DISTANCES, "cosine"),
        (shapes.TEMPLATES, "relation"),
    ],
)
def test_the_package_registries_are_registries(table, known):
    assert isinstance(table, Registry)
    assert known in table
    entry = table[known]
    with pytest.raises(UnknownNameError, match=f"known: .*{known}"):
        table.get("no-such-name")
    with pytest.raises(ValueError, match="registered twice"):
        table.add(known, object())
    assert table[known] is entry  # the rejected entry did not replace it


def test_registries_are_used_by_name_with_clear_errors():
    with pytest.raises(cross_attention.UnknownVersionError, match="v0, v1, v2"):
        cross_attention.get_cross_attention("v99")
    with pytest.raises(ValueError, match="known: last, mean"):
        clip.CLIPConfig(pooling="max")
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="known: euclidean, cosine"):
        losses.triplet_loss(a, b, b, distance="manhattan")
    same = losses.triplet_loss(a, b, b, margin=0.2, distance="cosine")  # d(a, p) = d(a, n)
    torch.testing.assert_close(same, torch.tensor(0.2))


def test_caption_templates_keep_registration_order_and_object_ranges():
    names = shapes.TEMPLATES.names()
    assert names[:2] == ("listing", "count")  # the order describe_scene shuffles from
    template, lowest, highest = shapes.TEMPLATES["chain"]
    assert callable(template) and (lowest, highest) == (3, 3)
    assert shapes.TEMPLATES["single"][1:] == (1, 1)
