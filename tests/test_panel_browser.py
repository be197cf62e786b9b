"""The browser panel as a person uses it: Debian's Chromium, headless, driven by Playwright (never a browser of
Playwright's own), against ``roarm-panel`` and the real control plane. A short training job and its bar moving,
its export, playing it in the simulator and the arm's image changing, the emergency stop, a killed simulator
and its restart, a second window seeing the same job.

``ROARM_PANEL_SCREENSHOTS=docs`` writes the screenshots to docs/ (panel_*.png) after a longer, fixed-target
training run that learns visibly; otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from panel_helpers import ROOT, panel_server, request, wait_for

CHROMIUM = os.environ.get("ROARM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
TEST_RUN = {"iterations": 20, "envs": 64, "overrides": ["env.episode_length_s=0.5"], "target": [0.25, 0.05, 0.15]}


def _docs_run() -> dict:
    from test_mcp import TRAIN_ENVS, TRAIN_OVERRIDES, _target_b

    return {"iterations": 60, "envs": TRAIN_ENVS, "overrides": TRAIN_OVERRIDES, "target": _target_b()}


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright==1.65.2; it uses Debian's chromium, no download)"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set ROARM_CHROMIUM)"
    return None


@pytest.fixture
def browser():
    missing = _browser_missing()
    if missing:
        print(f"SKIPPED: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright gives each context a fresh, temporary profile (a new --user-data-dir)
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS[1:])
        yield b
        b.close()


@pytest.mark.long
def test_a_person_trains_exports_plays_and_stops_the_arm_in_the_browser(tmp_path, browser):
    docs = os.environ.get("ROARM_PANEL_SCREENSHOTS")
    shots = (ROOT / docs) if docs else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    cfg = _docs_run() if docs else TEST_RUN
    logs = tmp_path / "logs"
    if docs:  # inside the checkout, so the pictures show the short paths a user sees (logs/ is ignored by git)
        logs = ROOT / "logs" / "panel_screenshots"
        shutil.rmtree(logs, ignore_errors=True)
    with panel_server(logs, "--allow-real-arm") as (url, _):  # a real arm configured: the stop latches it
        page = browser.new_page(viewport={"width": 1480, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        base = url.split("?")[0]
        assert page.goto(base).status == 401 and "needs its token" in page.inner_text("body")
        # the printed address: the token becomes an HttpOnly cookie and leaves the address bar
        page.goto(url)
        page.wait_for_selector("#link[data-ok=yes]")
        assert page.url == base and page.evaluate("document.cookie") == ""
        assert page.inner_text("#focus").startswith("No jobs yet")

        # ---- train: a double click starts one job; the bar moves
        page.fill("#iterations", str(cfg["iterations"]))
        page.fill("#envs", str(cfg["envs"]))
        page.fill("#runname", "browser")
        page.click("details summary")
        page.fill("#overrides", "\n".join(cfg["overrides"]))
        page.dblclick("#train")
        seen, shot = set(), False
        total = cfg["iterations"]
        while page.get_attribute("#focus", "data-state") != "succeeded":
            it = int(page.get_attribute("#progress", "data-iteration") or 0) if page.query_selector("#progress") else 0
            seen.add(it)
            if not shot and total * 0.4 <= it < total and page.get_attribute("#focus", "data-state") == "running":
                page.wait_for_timeout(1200)  # let the curve draw the points so far
                page.screenshot(path=str(shots / "panel_training.png"), full_page=True)
                shot = True
            assert page.get_attribute("#focus", "data-state") in ("none", "starting", "running", "succeeded"), \
                page.inner_text("#focus")
            page.wait_for_timeout(300)
        assert any(0 < it < total for it in seen) and len(seen) >= 2, f"the bar did not move: {sorted(seen)}"
        assert page.get_attribute("#progress", "data-iteration") == str(total)
        assert "100 %" in page.text_content("#curve") and page.query_selector("#curve path.line.success")
        jobs = request(url, "/api/state")[1]["jobs"]
        assert [j["kind"] for j in jobs] == ["train"], "the double click started more than one job"
        run_id = jobs[0]["run_id"]

        # ---- a second window sees the same job
        other = browser.new_page()
        other.goto(url)
        other.wait_for_selector(f"#jobs li:has-text('{run_id}')")
        other.close()

        # ---- export the run (a play.py job), then play it in the simulator toward a typed target
        page.wait_for_selector(f"#run option[value='{run_id}']", state="attached")
        page.click("#export")
        page.wait_for_selector("#export-state[data-exported=true]", timeout=180000)
        page.click("#sim-start")
        page.wait_for_selector("#frame[src^='blob:']", timeout=120000)
        page.wait_for_timeout(600)
        before = page.locator("#frame").screenshot()
        for axis, value in zip("xyz", cfg["target"]):
            page.fill(f"#t{axis}", f"{value:.3f}")
        page.click("#play")
        page.wait_for_selector("#errplot path.line.error", timeout=60000)
        wait_for("the policy run to end", lambda: "running" not in page.text_content("#errplot"), 60, 0.5)
        page.wait_for_timeout(800)
        after = page.locator("#frame").screenshot()
        assert before != after, "the arm image did not change when the policy played"
        assert "playing" in page.inner_text("#play-msg")
        page.screenshot(path=str(shots / "panel_play.png"), full_page=True)

        # ---- emergency stop: always enabled, latches the real arm (this panel may move one), says so
        assert page.is_enabled("#estop")
        page.click("#estop")
        page.wait_for_selector("#banner[data-kind=estop]:has-text('EMERGENCY STOP')")
        page.wait_for_selector("#real .kvrow.bad:has-text('LATCHED')")
        page.screenshot(path=str(shots / "panel_estop.png"), full_page=True)
        assert (logs / "real" / "STOP").is_file()

        # ---- the simulator dies: the page says so, does not freeze, and restarts it
        pid = request(url, "/api/state")[1]["sim"]["pid"]
        os.kill(pid, signal.SIGKILL)
        page.wait_for_selector("#banner:has-text('stopped unexpectedly')", timeout=30000)
        page.screenshot(path=str(shots / "panel_sim_died.png"), full_page=True)
        page.click("#banner-action")
        page.wait_for_selector("#sim-line:has-text('step')", timeout=120000)
        assert request(url, "/api/state")[1]["sim"]["pid"] != pid
        assert not errors, errors
