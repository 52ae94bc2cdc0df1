from dldna.chapter_10.vit import PatchEmbed
from dldna.display import show_source


def test_listing_is_the_real_source():
    listing = show_source(PatchEmbed)
    assert listing.source.startswith("class PatchEmbed")
    md = listing._repr_markdown_()
    assert "dldna.chapter_10.vit.PatchEmbed" in md and "```python" in md
