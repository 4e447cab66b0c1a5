"""html_to_text: sanitised, readable plain text from HTML mail bodies."""

from __future__ import annotations

import pytest

from normalizer.html import html_to_text


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>Hello",
        "<SCRIPT type='text/javascript'>alert(1)</SCRIPT>Hello",
        "<div><script>alert(1)</script></div>Hello",
        "<img src=x onerror=alert(1)>Hello",
        "<p onclick='alert(1)' onerror=\"alert(1)\">Hello</p>",
        "<style>body{background:url(javascript:alert(1))}</style>Hello",
        "<svg onload=alert(1)><script>alert(1)</script></svg>Hello",
        "<iframe src='javascript:alert(1)'></iframe>Hello",
    ],
)
def test_scripts_styles_and_event_handlers_never_survive(html: str) -> None:
    text = html_to_text(html)
    assert "alert" not in text
    assert "onerror" not in text
    assert "<script" not in text.lower()
    assert "Hello" in text


def test_paragraphs_and_list_items_become_readable_lines() -> None:
    html = (
        "<html><head><title>Ticket</title></head><body>"
        "<p>Hello desk,</p>\n<p>my laptop\n   will not boot:</p>"
        "<ul><li>It beeps twice</li><li>The screen stays black</li></ul>"
        "<div>Thanks,</div><div>Eve</div></body></html>"
    )
    assert html_to_text(html) == (
        "Hello desk,\n\nmy laptop will not boot:\n\n"
        "- It beeps twice\n- The screen stays black\n\nThanks,\nEve"
    )


def test_entities_are_unescaped_once_so_escaped_markup_stays_literal_text() -> None:
    assert html_to_text("<p>A &amp; B &lt;b&gt;not bold&lt;/b&gt; caf&eacute;&nbsp;!</p>") == (
        "A & B <b>not bold</b> café !"
    )


def test_line_breaks_and_empty_divs_keep_the_blank_lines_a_reader_sees() -> None:
    html = "<div>Hi there,</div><div><br></div><div>Line one<br>Line two</div>"
    assert html_to_text(html) == "Hi there,\n\nLine one\nLine two"


def test_table_rows_become_lines_and_cells_are_separated() -> None:
    html = "<table><tr><td>Asset</td><td>LT-042</td></tr><tr><td>User</td><td>eve</td></tr></table>"
    assert html_to_text(html) == "Asset LT-042\nUser eve"


def test_preformatted_text_keeps_its_layout() -> None:
    assert html_to_text("<pre>  x = 1\n  y = 2</pre>") == "  x = 1\n  y = 2"


@pytest.mark.parametrize(
    "html", ["", "<<<>>>", "</p></div>", "<!-- only a comment -->", "&#xffffff;"]
)
def test_empty_or_broken_markup_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)
