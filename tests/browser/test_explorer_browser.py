"""Lesson 09 in a real browser: run every cell in JupyterLab, find the attention explorer, move its
layer and query sliders, and check that the picture it shows changes each time."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "09_attention_maps.ipynb"
EXPLORER = ".vit-attention-explorer"
RUN_TIMEOUT_MS = 240_000  # a busy 2-core machine needs this much; a free one far less


def _slider(page, label: str):
    """The IntSlider of the explorer whose description is ``label``."""
    return page.locator(f"{EXPLORER} .widget-slider").filter(
        has=page.locator(".widget-label", has_text=re.compile(rf"^{label}$"))
    )


def _set_slider(page, label: str, value: int) -> None:
    """Type a value into the slider's editable readout (ipywidgets 7 and 8 both accept this)."""
    readout = _slider(page, label).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def _frame(page) -> tuple[str, bytes]:
    image = page.locator(f"{EXPLORER} img").first
    return image.get_attribute("src"), image.screenshot()


def _wait_for_new_frame(page, old_src: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        "([selector, old]) => { const img = document.querySelector(selector);"
        " return img && img.src !== old && img.complete && img.naturalWidth > 0; }",
        arg=[f"{EXPLORER} img", old_src],
        timeout=timeout_ms,
    )


def _run_all_cells(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _busy_prompts(page) -> int:
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-InputPrompt'))"
        ".filter(p => p.textContent.includes('*')).length"
    )


def _error_outputs(page) -> list[str]:
    texts = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    return [t for t in texts if "Traceback" in t or re.search(r"\w+Error\b", t)]


def _dismiss_popups(page) -> None:
    """JupyterLab may ask which kernel to start and whether to fetch news: answer before each action."""
    kernel_dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    page.add_locator_handler(
        kernel_dialog, lambda: kernel_dialog.locator("button", has_text=re.compile(r"^Select$")).click()
    )
    news = page.locator(".Toastify__toast").filter(has_text="Jupyter news").first
    page.add_locator_handler(news, lambda: news.locator("button", has_text=re.compile(r"^No$")).click())


def test_explorer_sliders_change_the_rendered_image(jupyter_lab, page, artifacts):
    start = time.monotonic()
    _dismiss_popups(page)
    page.goto(f"{jupyter_lab}lab/tree/{NOTEBOOK}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.wait_for_timeout(500)  # let a kernel dialog, if any, appear and be answered
    _run_all_cells(page)
    page.wait_for_selector(f"{EXPLORER} img", state="visible", timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(
        "() => !Array.from(document.querySelectorAll('.jp-Notebook .jp-InputPrompt'))"
        ".some(p => p.textContent.includes('*'))",
        timeout=RUN_TIMEOUT_MS,
    )
    page.screenshot(path=str(artifacts / "09_after_run_all.png"))
    assert _busy_prompts(page) == 0
    assert not _error_outputs(page), f"cells raised: {_error_outputs(page)[:2]}"

    explorer = page.locator(EXPLORER)
    explorer.scroll_into_view_if_needed()
    page.wait_for_function(
        "(selector) => { const img = document.querySelector(selector); return img && img.naturalWidth > 0; }",
        arg=f"{EXPLORER} img",
        timeout=30_000,
    )
    explorer.screenshot(path=str(artifacts / "09_explorer_initial.png"))
    src0, pixels0 = _frame(page)

    _set_slider(page, "layer", 1)  # it starts at the last layer
    _wait_for_new_frame(page, src0)
    explorer.screenshot(path=str(artifacts / "09_explorer_layer1.png"))
    src1, pixels1 = _frame(page)
    assert src1 != src0 and pixels1 != pixels0, "changing the layer must change the rendered image"
    assert _slider(page, "layer").locator(".widget-readout").inner_text().strip() == "1"

    _set_slider(page, "query", 20)  # class token → patch 20
    _wait_for_new_frame(page, src1)
    explorer.screenshot(path=str(artifacts / "09_explorer_query20.png"))
    src2, pixels2 = _frame(page)
    assert src2 != src1 and pixels2 != pixels1, "changing the query token must change the rendered image"
    assert "patch 20" in explorer.inner_text()
    (artifacts / "09_timing.txt").write_text(
        f"open, run all cells, two slider changes: {time.monotonic() - start:.0f} s\n"
    )
