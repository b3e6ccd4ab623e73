"""The Markdown and HTML renderers: their escaping, code spans, links, tables, block starts."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from clearance.render import html, markdown
from clearance.render.document import Bold, Bullets, Code, Document, Heading, Icon, Link, Para, Table


def markdown_to_html(md: str) -> str:
    """Markdown as a CommonMark + GFM-tables viewer shows it, raw HTML allowed (the worst case)."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def shown(md: str) -> _Tags:
    parsed = _Tags()
    parsed.feed(markdown_to_html(md))
    return parsed


@pytest.mark.parametrize("text", [
    "*a* **b** _c_ __d__ ~~e~~ `f`", "<b>x</b> <https://evil.example> &amp; &#60;", "[x](https://evil.example)",
    "![i](https://evil.example/i.png)", "a\\*b \\", "| a | b |", "snake_case_name and _x_",
])
def test_escaped_text_shows_exactly_and_formats_nothing(text: str) -> None:
    parsed = shown(markdown.render([Para([text])]))
    assert [t for t, _ in parsed.tags] == ["p"], parsed.tags
    assert parsed.text.strip() == text


@pytest.mark.parametrize("text", ["# h", "## h", "- item", "+ item", "* item", "1. one", "2) two", "> quote",
                                  "---", "***", "___", "===", "    code", "<div>x</div>"])
def test_user_text_never_starts_a_block(text: str) -> None:
    for blocks in ([Para([text])], [Bullets([([text], [[text]])])], [Heading(2, [text])]):
        parsed = shown(markdown.render(blocks))
        tags = {t for t, _ in parsed.tags}
        assert tags <= {"p", "ul", "li", "h2"}, (text, tags)
        assert text.strip() in parsed.text


def test_a_newline_in_user_text_cannot_start_a_heading() -> None:
    md = markdown.render([Para(["fine\n# Heading\n- item"])])
    assert md == "fine \\# Heading - item\n"


def test_intraword_underscores_stay_readable() -> None:
    assert markdown.escape("data_check psi_eval_age") == "data_check psi_eval_age"
    assert markdown.escape("_x_ a_ _b") == "\\_x\\_ a\\_ \\_b"


@pytest.mark.parametrize("text", ["plain", "a`b", "``double``", "`edge`", "ends with `", "x | y"])
def test_code_spans_hold_any_backticks(text: str) -> None:
    parsed = shown(markdown.render([Para([Code(text)])]))
    assert [t for t, _ in parsed.tags] == ["p", "code"]
    assert parsed.text.strip() == text.strip()


def test_table_cells_escape_pipes_even_in_code() -> None:
    table = Table(["a", "b"], [["x | y", [Code("p|q"), " ", Bold("z|w")]]])
    md = markdown.render([table])
    assert "| x \\| y | `p\\|q` **z\\|w** |" in md
    parsed = shown(md)
    assert sum(t == "td" for t, _ in parsed.tags) == 2 and "x | y" in parsed.text and "p|q" in parsed.text


@pytest.mark.parametrize(("url", "linked"), [("https://ok.example/a_(b)", True), ("javascript:alert(1)", False),
                                            ("data:text/html,x", False), ("https://x.example/a b", False)])
def test_links_only_for_safe_urls(url: str, linked: bool) -> None:
    for render in (lambda: shown(markdown.render([Para([Link(url, "label")])])),):
        parsed = render()
        anchors = [a for t, a in parsed.tags if t == "a"]
        assert bool(anchors) is linked
        if linked:
            assert anchors[0]["href"].startswith("https://ok.example/")
    page = html.render([Para([Link(url, "label")])])
    assert ("<a href=" in page) is linked and "javascript:" not in page.split("label")[0]


def test_html_escapes_text_attributes_and_keeps_the_policy() -> None:
    doc = Document(title='"><script>x</script>', blocks=[
        Heading(1, ["<b>", Code("<i>"), Bold("<u>"), Icon("pass")]),
        Table(["status", "x"], [["pass", "<td>"], ["<script>", "ok"]], status_column=0)])
    page = html.to_html(doc)
    assert "<script" not in page.replace("&lt;script", "") and "<b>" not in page and "<td>&lt;td&gt;</td>" in page
    assert '<span class="s s-pass">pass</span>' in page and "&lt;script&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_markdown_document_layout() -> None:
    doc = Document(blocks=[Heading(2, ["Gates"]), Bullets([(["a ", Code("b")], [["c"]])]),
                           Table(["k", "v"], [["x", "1"]])])
    assert markdown.to_markdown(doc) == "## Gates\n\n- a `b`\n  - c\n\n| k | v |\n|---|---|\n| x | 1 |\n"


def test_gate_document_has_checks_waivers_metrics_and_evidence() -> None:
    from clearance.render.gate import gate_blocks
    from gates.base import CheckResult, EvidenceFile, GateResult, Status

    result = GateResult.from_checks("data_check", "1.0.0", [
        CheckResult(id="psi:eval:age", status=Status.WAIVED, observed={"psi": 0.3}, threshold=0.25,
                    message="drift\nhere", waiver="ML-12", original_status=Status.FAIL),
    ], metrics={"rows": 10.0}, evidence=[EvidenceFile(name="psi.png", sha256="f" * 64)], message="1 waived")
    md = markdown.render(gate_blocks(result))
    assert md.startswith("### 🟡 Gate data_check v1.0.0: **WAIVED** (blocking)\n\n1 waived\n\n")
    assert "| psi:eval:age | waived | {\"psi\": 0.3} | 0.25 | drift here (waived: ML-12) |" in md
    assert "| rows | 10 |" in md and f"- `psi.png` sha256 `{'f' * 64}`" in md
