"""The reports a person reads: the conformance HTML page, parsed (no browser needed).

A fake registry of six cases with hand-picked metrics runs through ``brain-ai conformance
--html --json``; the page must carry, for every case, its expectation, every tolerance, every
metric and its ``why``; its summary counts must equal the results; each verdict must have its
colour class; and every navigation link must land on a section. The template is rendered with
autoescaping, so a case name with markup in it stays text.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from brain_ai.conformance import cli, registry, suite
from brain_ai.conformance.registry import Case, register
from brain_ai.text_table import text_table

TOL = {"spikes": 0.0, "membrane": 1e-6}


def _const(metrics: dict[str, float]):
    return lambda seed: metrics


def _raise(seed: int) -> dict[str, float]:
    raise ValueError("peer returned a list")


#: (case, expected verdict). Metrics are fixed numbers, so the verdicts follow by hand:
#: 0 <= 0 and 5e-7 <= 1e-6 pass; 2 > 0 fails an ``equal`` case; 891 > 0 is the difference a
#: guard wants; a guard that sees 0 <= 0 and 0 <= 1e-6 fails; a raising case is an ERROR.
CASES: list[tuple[Case, str]] = [
    (Case("peerA/Leaky/subtract/from", "Leaky", "peerA",
          _const({"spikes": 0.0, "membrane": 5e-7, "rate": 0.125}), TOL,
          config={"reset": "subtract"}, steps=100), "PASS"),
    (Case("peerA/Leaky/zero/from", "Leaky", "peerA",
          _const({"spikes": 2.0, "membrane": 0.5}), TOL, config={"reset": "zero"}), "FAIL"),
    (Case("peerA/Leaky/tie/guard", "Leaky", "peerA", _const({"spikes": 891.0, "membrane": 0.0}),
          {"spikes": 0.0}, expect="differs",
          why="peerA fires on v > threshold; v == threshold does not fire <b>&amp;</b>"),
     "GUARD-OK"),
    (Case("peerA/loss/<script>alert(1)</script>", "loss", "peerA",
          _const({"value": 0.0}), {"value": 1e-6}), "PASS"),
    (Case("peerB/LIFNode/order/guard", "LIFNode", "peerB",
          _const({"spikes": 0.0, "membrane": 0.0}), TOL, expect="differs",
          why="the s-mode gradient accumulates in another order"), "FAIL"),
    (Case("peerB/LIFNode/raises", "LIFNode", "peerB", _raise, TOL), "ERROR"),
]


class Node:
    """An element of the parsed page: tag, attributes, children, text."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.content: list[Node | str] = []  # text and children in document order

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """All text inside, whitespace collapsed."""
        out = [c if isinstance(c, str) else c.text() for c in self.content]
        return " ".join(" ".join(out).split())

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]


class Page(HTMLParser):
    """A small DOM from html.parser (void elements closed at once)."""

    VOID: ClassVar[set[str]] = {"meta", "br", "img", "link", "hr", "input"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        self.cur.content.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_endtag(self, tag: str) -> None:
        node = self.cur
        while node is not self.root and node.tag != tag:
            node = node.parent  # type: ignore[assignment]
        if node is not self.root:
            self.cur = node.parent  # type: ignore[assignment]

    def handle_data(self, data: str) -> None:
        self.cur.content.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    """Run the fake matrix once: ``(exit code, Page, page text, JSON report)``."""
    mp = pytest.MonkeyPatch()
    mp.setattr(registry, "CASES", [])
    mp.setattr(suite, "LOAD_ERRORS", {})
    mp.setattr(suite, "_LOADED", True)
    try:
        for case, _ in CASES:
            register(case)
        out = tmp_path_factory.mktemp("report")
        parser = argparse.ArgumentParser()
        cli.add_arguments(parser)
        rc = cli.run(parser.parse_args(["--html", str(out / "r.html"),
                                        "--json", str(out / "r.json")]))
    finally:
        mp.undo()
    html = (out / "r.html").read_text(encoding="utf-8")
    return rc, Page(html), html, json.loads((out / "r.json").read_text(encoding="utf-8"))


def _rows(page: Page) -> dict[str, Node]:
    """Case name -> its table row."""
    return {r.find_all("div", "name")[0].text(): r for r in page.root.find_all("tr", "case")}


def test_exit_code_and_every_case_has_a_row(report) -> None:
    rc, page, _, data = report
    assert rc == 1  # two FAIL and one ERROR
    rows = _rows(page)
    assert list(rows) == [c.name for c, _ in CASES if c.peer == "peerA"] + \
        [c.name for c, _ in CASES if c.peer == "peerB"]
    assert [c["name"] for c in data["cases"]] == [c.name for c, _ in CASES]


def test_verdicts_have_their_colour_class_and_badge(report) -> None:
    _, page, _, data = report
    rows = _rows(page)
    for case, verdict in CASES:
        row = rows[case.name]
        assert row.classes == {"case", f"v-{verdict}"} and row.attrs["data-verdict"] == verdict
        badges = row.find_all("span", "badge")
        assert len(badges) == 1 and badges[0].classes == {"badge", f"v-{verdict}"}
        assert badges[0].text() == verdict
    assert {c["name"]: c["verdict"] for c in data["cases"]} == {c.name: v for c, v in CASES}
    css = page.root.find_all("style")[0].text()
    # the colours: PASS green, GUARD-OK blue, FAIL red, ERROR orange-brown
    for rule in ("--pass:#1a7f37", "--guard:#0b5cad", "--fail:#cf222e", "--error:#a33c00",
                 ".badge.v-PASS{background:var(--pass-bg);color:var(--pass)}",
                 ".badge.v-FAIL{background:var(--fail);color:#fff}",
                 ".badge.v-ERROR{background:var(--error);color:#fff}",
                 ".badge.v-GUARD-OK{background:var(--guard-bg);color:var(--guard)}"):
        assert rule in css


def test_every_case_shows_expectation_tolerances_metrics_and_why(report) -> None:
    _, page, _, _ = report
    rows = _rows(page)
    for case, _ in CASES:
        row = rows[case.name]
        expect = row.find_all("span", "expect")[0]
        assert row.attrs["data-expect"] == case.expect
        assert expect.text() == ("differs (guard)" if case.expect == "differs" else "equal")
        checks = {li.attrs["data-metric"]: li for li in row.find_all("li")
                  if "data-metric" in li.attrs}
        assert list(checks) == list(case.tolerances)
        for metric, tol in case.tolerances.items():
            assert checks[metric].attrs["data-tolerance"] == repr(tol)
            assert cli.format_number(tol) in checks[metric].text()
        whys = row.find_all("div", "why")
        assert [w.text() for w in whys] == ([f"why: {case.why}"] if case.why else [])
    assert [li.text() for li in rows["peerA/Leaky/subtract/from"].find_all("li")] == [
        "spikes 0 ≤ 0", "membrane 5.0e-07 ≤ 1.0e-06", "rate 0.125"]
    zero = rows["peerA/Leaky/zero/from"]
    assert [(li.attrs["class"], li.text()) for li in zero.find_all("ul", "checks")[0].children] \
        == [("bad", "spikes 2 > 0"), ("bad", "membrane 0.5 > 1.0e-06")]
    assert zero.find_all("div", "detail")[0].text() == "spikes 2 > 0; membrane 0.5 > 1.0e-06"
    guard = rows["peerA/Leaky/tie/guard"]
    assert [(li.attrs["class"], li.text()) for li in guard.find_all("ul", "checks")[0].children] \
        == [("ok", "spikes 891 > 0")]
    assert [li.text() for li in guard.find_all("ul", "others")[0].children] == ["membrane 0"]
    missed = rows["peerB/LIFNode/order/guard"]
    assert [li.attrs["class"] for li in missed.find_all("ul", "checks")[0].children] == \
        ["neutral", "neutral"]
    assert missed.find_all("div", "detail")[0].text().startswith(
        "guard: expected a difference, none observed: spikes 0 vs tol 0")
    error = rows["peerB/LIFNode/raises"]
    assert error.find_all("pre", "detail")[0].text() == "ValueError: peer returned a list"
    assert [li.text() for li in error.find_all("ul", "checks")[0].children] == [
        "spikes not measured (tol 0)", "membrane not measured (tol 1.0e-06)"]


def test_summary_counts_equal_the_results(report) -> None:
    _, page, _, data = report
    cards = {c.attrs["data-verdict"]: int(c.find_all("div", "big")[0].text())
             for c in page.root.find_all("div", "card")}
    assert cards == {"PASS": 2, "GUARD-OK": 1, "FAIL": 2, "ERROR": 1}
    assert cards == {v: Counter(v for _, v in CASES)[v] for v in cli.VERDICTS}
    s = data["summary"]
    assert (s["passed"], s["failed"], s["guards_ok"], s["errors"]) == (3, 3, 1, 1)
    banner = page.root.find_all("div", "banner")[0]
    assert banner.classes == {"banner", "bad"}
    assert banner.text() == "3 of 6 cases did not pass (2 failed, 1 errors). Exit code 1."
    overview = {(r.attrs["data-peer"], r.attrs["data-family"]): [td.text() for td in
                r.find_all("td")][1:6] for r in page.root.find_all("tr", "family")}
    assert overview == {  # cases, PASS, GUARD-OK, FAIL, ERROR
        ("peerA", "Leaky"): ["3", "1", "1", "1", "0"],
        ("peerA", "loss"): ["1", "1", "0", "0", "0"],
        ("peerB", "LIFNode"): ["2", "0", "0", "1", "1"],
    }
    peers = {r.find_all("td")[0].text(): [td.text() for td in r.find_all("td")][1:6]
             for r in page.root.find_all("tr", "peer")}
    assert peers == {"peerA": ["4", "2", "1", "1", "0"], "peerB": ["2", "0", "0", "1", "1"]}
    meta = page.root.find_all("dl", "meta")[0].text()
    assert f"{s['seconds']:.1f} s wall" in meta and "seed 0" in meta
    assert f"torch {torch.__version__}" in meta and "snntorch" in meta
    assert "spikingjelly" in meta
    env = {tr.find_all("th")[0].text(): tr.find_all("td")[0].text()
           for tr in page.root.find_all("table", "env")[0].find_all("tr")}
    assert env["torch"] == data["environment"]["torch"] == torch.__version__
    assert set(env) == set(data["environment"])
    not_passed = [a.text() for a in page.root.find_all("a", "name")]
    assert not_passed == ["peerA/Leaky/zero/from", "peerB/LIFNode/order/guard",
                          "peerB/LIFNode/raises"]


def test_navigation_links_land_on_sections_and_cases(report) -> None:
    _, page, _, _ = report
    ids = {n.attrs["id"] for n in page.root.iter() if "id" in n.attrs}
    nav = page.root.find_all("nav")[0]
    links = [a.attrs["href"] for a in nav.find_all("a")]
    assert all(h.startswith("#") and h[1:] in ids for h in links)
    sections = [s.attrs["id"] for s in page.root.find_all("section", "family")]
    assert sections == ["peera-leaky", "peera-loss", "peerb-lifnode"]
    assert {f"#{s}" for s in sections} <= set(links)
    for a in page.root.find_all("a"):
        assert a.attrs["href"].startswith("#") and a.attrs["href"][1:] in ids
    headings = [s.find_all("h3")[0].text() for s in page.root.find_all("section", "family")]
    assert headings == ["peerA · Leaky", "peerA · loss", "peerB · LIFNode"]


def test_autoescaped_and_self_contained(report) -> None:
    _, page, html, _ = report
    assert html.startswith("<!doctype html>")
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "peerA/loss/<script>alert(1)</script>" in _rows(page)  # shown as text
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in html  # a why is text too, never markup
    assert "http://" not in html and "https://" not in html and "src=" not in html


def test_template_ships_as_package_data() -> None:
    root = Path(__file__).resolve().parents[1]
    assert (root / "conformance" / "templates" / cli.TEMPLATE).is_file()
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert '"brain_ai.conformance" = ["templates/*"]' in pyproject


def test_text_table_aligns_and_never_interprets_markup() -> None:
    table = text_table(("name", "value", "note"),
                           [("a", "1", "[bold]x[/bold]"), "== group", ("long-name", "0.25", "")],
                           right=(1,))
    assert table.splitlines() == [
        "name        value   note",
        "-" * 34,
        "a               1   [bold]x[/bold]",
        "== group",
        "long-name    0.25",
    ]
    with pytest.raises(ValueError, match="a row has the wrong number of cells"):
        text_table(("a", "b"), [("only one",)])
