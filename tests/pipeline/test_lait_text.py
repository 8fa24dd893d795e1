"""Text step: cleaning, each filter, the choice among an image's texts, the LaitText transform."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.lait_config import LaitConfig
from pipeline.lait_text import LaitText, check_text, choose_text, clean_text, oov_ratio


def test_clean_text():
    assert clean_text("  Sooooo cute!!!!  see https://x.invalid/a?b=1 now ") == "So cute! see now"
    assert clean_text("Year 2000 -- the   end |") == "Year 2000 -- the end"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A brown dog runs across the green meadow", ""),
        ("", "empty"),
        ("image", "boilerplate"),
        ("Click here to enlarge the photo", "boilerplate"),
        ("IMG_0042.JPG", "boilerplate"),
        ("dsc01234", "boilerplate"),
        ("view larger image", "boilerplate"),
        ("2019", "boilerplate"),
        ("Buy cheap viagra at the best price", "spam"),
        ("Get 50% off all garden furniture today", "spam"),
        ("Hot naked singles in your area tonight", "adult"),
        ("Nice view", "too short"),
        (" ".join(["word"] * 51), "too long"),
        ("Qzxv plorbt wugga snarfle the meadow", "oov"),
    ],
)
def test_check_text_reasons(text, reason):
    got = check_text(text, min_words=3, max_words=50, max_oov=0.3).reason
    assert got.split(":")[0] == reason


def test_oov_ratio_knows_web_words():
    assert oov_ratio("a selfie with my smartphone") == 0.0
    assert oov_ratio("xqzt wprrf the dog") == 0.5


def test_choose_text_ranking_and_taint():
    texts = {
        "alt": "A dog on the beach at sunset",
        "figcaption": "Our dog Rex on Brighton beach at sunset",
        "surrounding": "We walked for hours along the shore.",
    }
    source, check, _ = choose_text(texts, 3, 50, 0.3)
    assert source == "figcaption" and check.text.startswith("Our dog Rex")
    source, check, reasons = choose_text({**texts, "figcaption": "image"}, 3, 50, 0.3)
    assert source == "alt" and reasons["figcaption"] == "boilerplate"
    # a spam word in any text rejects the candidate, even when another text is fine
    source, check, reasons = choose_text({**texts, "title": "casino bonus now"}, 3, 50, 0.3)
    assert (source, check) == ("", None) and reasons[""] == "spam: 'casino' (title)"
    # all fail: the best-ranked text's reason
    _, check, reasons = choose_text({"alt": "photo", "title": "ok"}, 3, 50, 0.3)
    assert check is None and reasons[""] == "boilerplate (alt)"
    assert choose_text({}, 3, 50, 0.3)[2][""].startswith("no text")


def test_english_confidence_of_short_texts():
    from pipeline.lait_pages import LanguageId

    langid = LanguageId()
    english = lambda t: langid.confidence(t, "en", 0.5)  # noqa: E731
    # an argmax calls this Italian; with the page's language as prior it is English
    assert langid.classify("Espresso in a red cup")[0] != "en"
    assert english("Espresso in a red cup") > 0.7
    assert english("Ein brauner Hund läuft über die Wiese") < 0.01
    assert english("Un chat gris dort sur le canapé") < 0.01
    got = check_text("Zwei Boote liegen im Hafen", 3, 50, 1.0, english, 0.5)
    assert got.reason.startswith("not english") and got.english < 0.05
    ok = check_text("Two boats in the harbour", 3, 50, 0.3, english, 0.5)
    assert ok.reason == "" and ok.english > 0.9
    source, check, reasons = choose_text(
        {"alt": "Ein brauner Hund im Park", "title": "A brown dog in the park"}, 3, 50, 1.0,
        english, 0.5,
    )  # fmt: skip
    assert source == "title" and reasons["alt"].startswith("not english")


def test_lait_text_transform():
    cands = [
        {"input_id": "1", "texts": {"alt": "A red kite high above the dunes"}},
        {"input_id": "2", "texts": {"alt": "logo"}},
        {"input_id": "3", "texts": {}},
        {"input_id": "4", "texts": {"caption": "Two boats in the harbour", "alt": "boats"}},
        {"input_id": "5", "texts": {"alt": "Ein roter Drachen hoch über den Dünen"}},
    ]
    p = BeamTestPipeline(runner="FnApiRunner")
    kept, rejects = p | beam.Create(cands) | LaitText(LaitConfig(inputs=[], out=""))
    assert_that(
        kept | beam.Map(lambda c: (c["input_id"], c["caption"], c["text_source"], c["word_count"])),
        equal_to(
            [
                ("1", "A red kite high above the dunes", "alt", 7),
                ("4", "Two boats in the harbour", "caption", 5),
            ]
        ),
        label="kept",
    )
    assert_that(
        rejects | beam.Map(lambda r: (r["input_id"], r["step"], r["reason"].split(":")[0])),
        equal_to(
            [
                ("2", "text", "boilerplate (alt)"),
                ("3", "text", "no text"),
                ("5", "text", "not english"),
            ]
        ),  # fmt: skip
        label="rejects",
    )
    p.run().wait_until_finish()
