"""The one-line search language (TUI search box, CLI query text) and the CLI's term syntax."""

import pytest

from umsearch.errors import UmsearchError
from umsearch.filters import Filters, parse_date
from umsearch.querylang import Term, parse_search_text, parse_term, request_from_cli


def test_the_example_question_in_one_line():
    request = parse_search_text("beach after:2025-06 before:2025-09 place:Portugal -people")
    assert request.positives == (Term(text="beach"),)
    assert request.negatives == (Term(text="people", weight=0.5),)
    assert request.filters.after == parse_date("2025-06-01")
    assert request.filters.before == parse_date("2025-09-01")
    assert request.filters.place == "Portugal"


def test_words_form_one_term_and_plus_starts_another_with_weights():
    request = parse_search_text('red car + "sunset over sea"^0.5 + dog^2')
    assert request.positives == (Term("red car"), Term("sunset over sea", weight=0.5), Term("dog", weight=2.0))


def test_negative_phrases_images_and_weights():
    request = parse_search_text('cat -"many people"^0.8 -like:/x/dog.jpg like:/x/cat.jpg')
    assert request.positives == (Term("cat"), Term(image="/x/cat.jpg"))
    assert request.negatives == (Term("many people", weight=0.8), Term(image="/x/dog.jpg", weight=0.5))


def test_filters_sort_min_limit_and_quoted_values(tmp_path):
    request = parse_search_text(
        f'dog in:{tmp_path} type:JPEG,png camera:"EOS R6" place:"New York" min:0.25 sort:date limit:7'
    )
    assert request.filters == Filters(folders=(str(tmp_path),), types=("jpg", "png"), camera="EOS R6", place="New York")
    assert (request.min_score, request.sort, request.limit) == (0.25, "date", 7)


def test_unknown_keys_hyphens_inside_words_and_non_english_stay_text():
    request = parse_search_text("time:3pm well-lit 海滩 日落")
    assert request.positives == (Term("time:3pm well-lit 海滩 日落"),)
    assert request.negatives == ()


def test_unbalanced_quote_runs_to_the_end_instead_of_failing():
    assert parse_search_text('"open quote').positives == (Term("open quote"),)


@pytest.mark.parametrize("bad", ["after:someday", "before:2025-13", "sort:random", "min:high", "type:,"])
def test_bad_values_are_one_line_errors(bad):
    with pytest.raises(UmsearchError):
        parse_search_text(f"beach {bad}")


def test_dates_are_periods():
    assert parse_date("2025") == parse_date("2025-01-01")
    assert parse_date("2025-06", end=True) == parse_date("2025-07-01")
    assert parse_date("2025-12", end=True) == parse_date("2026-01-01")


def test_cli_terms_flags_and_image_fusion(tmp_path):
    assert parse_term("sunset^0.3") == Term("sunset", weight=0.3)
    assert parse_term("people", negative=True) == Term("people", weight=0.5)
    request = request_from_cli(
        "beach -people",
        image="/p/a.jpg",
        also=["sea^2"],
        avoid=["night"],
        avoid_images=["/p/b.jpg"],
        filters=Filters(place="Portugal"),
        sort="date",
    )
    assert request.positives == (Term("beach", image="/p/a.jpg"), Term("sea", weight=2.0))
    assert request.negatives == (
        Term("people", weight=0.5),
        Term("night", weight=0.5),
        Term(image="/p/b.jpg", weight=0.5),
    )
    assert request.filters.place == "Portugal" and request.sort == "date"
    literal = request_from_cli("-people place:x", literal=True)
    assert literal.positives == (Term("-people place:x"),) and literal.filters.is_empty()
