"""The feature space's plane of the principal axes in a real browser: chosen, brushed,
and kept in the link."""

import re

from conftest import brush
from playwright.sync_api import expect


def test_brushing_the_principal_axes_lights_cells_and_survives_the_link(page, app_url,
                                                                         errors, artifacts):
    page.goto(app_url + "?grid=h3&level=3&tab=Feature+space")
    expect(page.get_by_text("No cells brushed").first).to_be_visible(timeout=60_000)
    page.locator(".space-plane button", has_text="principal axes").first.click()
    expect(page.locator(".space-axes").first).to_contain_text(
        "principal axes of", timeout=60_000)
    page.wait_for_timeout(2000)
    # the axes are named by their share of the variance and their loadings
    labels = page.wait_for_function("""() => {
      for (const doc of Bokeh.documents)
        for (const m of doc._all_models.values())
          if (m.axis_label && /principal axis 1/.test(m.axis_label)) return m.axis_label;
      return false;
    }""", timeout=30_000).json_value()
    assert re.search(r"principal axis 1 \(\d+ % of variance\): [+-]\d\.\d\d ", labels)
    brush(page)
    lit = page.locator(".space-status strong",
                       has_text=re.compile(r"\d[\d,]* cells brushed"))
    expect(lit.first).to_be_visible(timeout=30_000)
    count = re.search(r"(\d[\d,]*) cells brushed", lit.first.inner_text())[1]
    expect(page.locator(".space-status").first).to_contain_text("PC1")
    page.screenshot(path=artifacts / "feature_space_axes.png")
    # the brush is in the link: a new page from it opens on the axes, the same cells lit
    expect(page).to_have_url(re.compile(r"brush=.*PC1"), timeout=30_000)
    again = page.context.new_page()
    again.goto(page.url)
    expect(again.locator(".space-status").first).to_contain_text(
        f"{count} cells brushed", timeout=60_000)
    expect(again.locator(".space-axes").first).to_contain_text("principal axes of",
                                                               timeout=60_000)
    again.close()
    assert errors == []
