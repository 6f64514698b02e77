"""The lessons' widgets in a real browser: JupyterLab (and Notebook 7) in headless Chromium.

Each test opens a lesson from a temporary copy of notebooks/, clears its saved outputs, runs all
cells through the Run menu, waits for the kernel to go idle, then checks that no cell shows an
error, that the explorer widget renders (sliders and the heatmap image), and that moving a
slider and typing new text change the picture. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

RUN_TIMEOUT_S = 240  # the longest lesson must run top to bottom within this (they aim for < 60 s)


@dataclass(frozen=True)
class ExplorerKind:
    """How to find one kind of course_lib explorer in the page (its stable CSS classes)."""

    root: str
    slider: str
    text: str


PATTERN = ExplorerKind(
    ".course-pattern-explorer", ".course-pattern-temperature", ".course-pattern-text input"
)
MODEL = ExplorerKind(".course-attention-explorer", ".course-attention-query", ".course-attention-text input")

# lesson number -> the explorer kind it must contain
LESSONS = {"03": PATTERN, "11": MODEL}

STATE_JS = """(name) => {
  const app = window.jupyterapp;
  if (!app) return null;
  // the panel of *this* notebook, found by its path: a restored workspace may hold other tabs,
  // and whichever tab is current can change while the page settles
  let w = null;
  try {
    for (const x of app.shell.widgets('main')) {
      if (x.context && x.context.path && x.context.path.split('/').pop() === name) { w = x; break; }
    }
  } catch (e) { w = app.shell.currentWidget; }  // a shell without widgets(area)
  if (!w || !w.content || !w.content.model || !w.sessionContext) return {ready: false};
  if (app.shell.currentWidget !== w) app.shell.activateById(w.id);
  w.node.dataset.courseTest = name;  // lets the tests scope their locators to this panel
  const cells = w.content.model.cells;
  let n = 0, done = 0;
  const errors = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    n++;
    if (c.executionCount) done++;
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  }
  const s = w.sessionContext;
  const k = s.session && s.session.kernel;
  return {ready: true, n, done, errors, status: k ? k.status : null};
}"""

IMAGE_DIGEST_JS = """async (img) => {
  try {
    if (!img.src || !img.complete || img.naturalWidth === 0) return null;
    const buf = await (await fetch(img.src)).arrayBuffer();
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return Array.from(d).map(x => x.toString(16).padStart(2, '0')).join('');
  } catch (e) { return null; }  // the blob was replaced while we read it: try again
}"""


def lesson_path(number: str) -> Path | None:
    found = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    return found[0] if found else None


def poll(fn, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Call fn until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def kernel_state(page, name: str) -> dict | None:
    return page.evaluate(STATE_JS, name)


def open_and_run(page, url: str, ui: str, name: str) -> dict:
    """Open the notebook `name`, clear its saved outputs, Run > Run All Cells, wait until idle."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    state = kernel_state(page, name)
    if state is None:
        pytest.fail(f"window.jupyterapp is missing in {ui}: the server must run with expose_app_in_browser")
    poll(
        lambda: (kernel_state(page, name) or {}).get("status") == "idle",
        90,
        what="the kernel to start (idle)",
    )
    # start from a clean slate, so that every output and execution count we see is new
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    poll(lambda: kernel_state(page, name)["done"] == 0, 10, what="the saved outputs to clear")

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    def finished():
        s = kernel_state(page, name)
        return s if s["n"] and s["done"] == s["n"] and s["status"] == "idle" else None

    t0 = time.monotonic()
    state = poll(finished, RUN_TIMEOUT_S, interval=0.5, what="all cells to run")
    state["run_s"] = time.monotonic() - t0
    return state


def image_digest(img) -> str | None:
    return img.evaluate(IMAGE_DIGEST_JS)


def wait_for_new_picture(img, before: str, what: str) -> str:
    return poll(
        lambda: (d := image_digest(img)) and d != before and d, 30, what=f"the picture to change after {what}"
    )


def new_text_for(kind: ExplorerKind, old: str) -> str:
    if kind is PATTERN:
        return "a dog chased the cat and the cat ran up a tree"
    # a model's vocabulary is unknown here: reuse the characters already accepted, in a new order
    new = old[::-1] if old[::-1] != old else old[1:] + old[:1]
    return new.strip() or old


def check_explorer(page, name: str, kind: ExplorerKind, shots: Path, prefix: str) -> None:
    root = page.locator(f'[data-course-test="{name}"] {kind.root}').first
    root.wait_for(state="visible", timeout=30_000)
    root.scroll_into_view_if_needed()
    sliders = root.locator(".widget-slider")
    assert sliders.count() >= 1, "the explorer shows no slider"
    img = root.locator("img.course-attention-image").first
    img.wait_for(state="visible")
    before = poll(lambda: image_digest(img), 30, what="the heatmap image to load")
    width = img.evaluate("i => i.naturalWidth")
    assert width > 100, f"the heatmap image is only {width} px wide"
    page.screenshot(path=str(shots.with_name(f"{prefix}-1-notebook.png")))
    root.screenshot(path=str(shots.with_name(f"{prefix}-2-widget.png")))

    # move a slider with the mouse, as a user would: click its track away from the handle
    track = root.locator(f"{kind.slider} .noUi-target").first
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    handle = root.locator(f"{kind.slider} .noUi-handle").first.bounding_box()
    at = 0.25 if handle["x"] + handle["width"] / 2 > box["x"] + box["width"] / 2 else 0.75
    page.mouse.click(box["x"] + at * box["width"], box["y"] + box["height"] / 2)
    after_slider = wait_for_new_picture(img, before, "moving a slider")
    root.screenshot(path=str(shots.with_name(f"{prefix}-3-after-slider.png")))

    # type new text and press Enter
    box = root.locator(kind.text).first
    new = new_text_for(kind, box.input_value())
    box.fill(new)
    box.press("Enter")
    wait_for_new_picture(img, after_slider, "typing new text")
    message = root.locator(".course-explorer-message").first.inner_text().strip()
    assert not message.startswith("⚠"), f"the explorer refused {new!r}: {message}"
    root.screenshot(path=str(shots.with_name(f"{prefix}-4-after-text.png")))


def no_error_in_page(page) -> list[str]:
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[:300] for t in texts if "Traceback (most recent call last)" in t]


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_lesson_in_jupyterlab(lesson, page, jupyter_lab, artifacts):
    path = lesson_path(lesson)
    assert path is not None, f"no notebooks/{lesson}_*.ipynb: the browser tests need every lesson they name"
    # a workspace of its own, reset: no tabs restored from an earlier test
    url = f"{jupyter_lab.url}/lab/workspaces/test-{lesson}/tree/{path.name}?reset"
    state = open_and_run(page, url, "JupyterLab", path.name)
    assert not state["errors"], f"{path.name} shows errors in JupyterLab: {state['errors']}"
    assert not no_error_in_page(page), no_error_in_page(page)
    news = page.locator(".Toastify__toast", has_text=re.compile("Jupyter news", re.I))
    assert news.count() == 0, (
        "JupyterLab greets the learner with its news pop-up (see tools/jupyterlab-overrides.json)"
    )
    print(f"\n{path.name}: {state['n']} code cells ran in JupyterLab in {state['run_s']:.1f} s")
    check_explorer(page, path.name, LESSONS[lesson], artifacts / "x.png", f"browser-lab-{path.stem}")


def test_lesson_03_in_notebook7(page, jupyter_notebook, artifacts):
    path = lesson_path("03")
    assert path is not None, "no notebooks/03_*.ipynb: the Notebook 7 test runs lesson 03"
    state = open_and_run(page, f"{jupyter_notebook.url}/notebooks/{path.name}", "Notebook 7", path.name)
    assert not state["errors"], f"{path.name} shows errors in Notebook 7: {state['errors']}"
    assert not no_error_in_page(page), no_error_in_page(page)
    print(f"\n{path.name}: {state['n']} code cells ran in Notebook 7 in {state['run_s']:.1f} s")
    check_explorer(page, path.name, PATTERN, artifacts / "x.png", f"browser-notebook7-{path.stem}")
