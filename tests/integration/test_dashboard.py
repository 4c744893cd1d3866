"""/dashboard in a real browser: Debian's headless Chromium, driven through
chromedriver by Selenium, against the real stack while a batch runs. The page
must show numbers that move, end on PostgreSQL's numbers, keep the key out of
every URL and load nothing from anywhere else."""
import json
import os
import re
import shutil
import time

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import ROOT, cartesia_headers, wait_until

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
URL = "/agents/calls/batches"
BUSY = "0486"   # the simulator answers numbers ending so with busy


def create(stack, t, name, n, limit, busy_every=0):
    nums = [f"+1415{i:04d}{BUSY}" if busy_every and i % busy_every == 0 else f"+1650{i:07d}"
            for i in range(n)]
    body = {"name": name, "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": limit, "recipients": [{"to_number": x} for x in nums]}
    r = requests.post(stack.api + URL, json=body, headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def progress(stack, t, bid):
    r = requests.get(f"{stack.api}/progress/batches/{bid}",
                     headers={"Authorization": "Bearer " + t["api_key"]}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def browser():
    assert CHROMIUM and DRIVER, "chromium and chromium-driver come from deploy/local/install-deps.sh"
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,760", "--hide-scrollbars"):
        o.add_argument(a)
    # Every request the page makes, with its headers, to check where the key goes.
    o.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=o)


READ_ROW = """
var r = document.querySelector('tr[data-batch-id="' + arguments[0] + '"]'), o = {};
if (!r) return null;
[["finished", "div.finished"], ["completed", "td.completed"], ["failed", "td.failed"],
 ["cancelled", "td.cancelled"], ["live", "td.live"], ["status", "span.status"], ["eta", "td.eta"]
].forEach(function (p) { o[p[0]] = r.querySelector(p[1]).innerText; });
return o;
"""
READ_OUTCOMES = """
var o = {};
document.querySelectorAll("#outcomes g.outcome").forEach(function (g) {
  o[g.getAttribute("data-reason")] = parseInt(g.querySelector(".count").textContent, 10);
});
return o;
"""


def ints(text):
    return [int(x) for x in re.findall(r"\d+", text)]


def row_numbers(d, bid):
    """What a person reads in the batch's row, or None before it is there."""
    # Read in one go: the page redraws its rows every poll.
    txt = d.execute_script(READ_ROW, bid)
    if not txt:
        return None
    fin, total = ints(txt["finished"])[:2]
    live, limit = ints(txt["live"])
    return {"finished": fin, "total": total, "completed": int(txt["completed"]),
            "failed": int(txt["failed"]), "cancelled": int(txt["cancelled"]), "live": live,
            "limit": limit, "status": txt["status"].replace(" ", "_"), "eta": txt["eta"]}


def test_dashboard_follows_a_running_batch_to_postgresqls_numbers(stack, tmp_path):
    t = stack.tenant(concurrency=6)
    # Page, script and data routes as the browser will see them.
    page = requests.get(stack.api + "/dashboard", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert t["api_key"] not in page.text
    assert requests.get(stack.api + "/progress/batches", timeout=10).status_code == 401

    # A batch that is over, one cancelled part-way, and the one to follow.
    done = create(stack, t, "welcome calls", 20, 2)
    wait_until(lambda: progress(stack, t, done)["done"], 60, "the first batch to end", 0.2)
    old = create(stack, t, "old list", 300, 1)
    wait_until(lambda: progress(stack, t, old)["counts"]["completed"] >= 3, 60,
               "a few calls of the old list", 0.1)
    r = requests.post(f"{stack.api}{URL}/{old}/cancel", headers=cartesia_headers(t["api_key"]),
                      timeout=10)
    assert r.status_code == 200, r.text
    run = create(stack, t, "spring campaign", 240, 3, busy_every=7)

    d = browser()
    try:
        d.get(stack.api + "/dashboard")
        # No key yet: the page asks for one and shows nothing else.
        wait_until(lambda: d.find_element(By.ID, "login").is_displayed(), 10, "the key form")
        assert not d.find_element(By.ID, "main").is_displayed()
        d.find_element(By.ID, "key").send_keys("bc_sk_0123456789abcdef_" + "0" * 32)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(lambda: "refused" in d.find_element(By.ID, "login-error").text, 10,
                   "a wrong key to be refused")

        d.find_element(By.ID, "key").send_keys(t["api_key"])
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(lambda: row_numbers(d, run), 15, "the running batch's row")
        assert row_numbers(d, done)["status"] == "completed"
        assert row_numbers(d, old)["status"] == "cancelled"

        seen, shot = [], None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            n = row_numbers(d, run)
            tenant_live, tenant_limit = ints(d.find_element(By.ID, "tenant-live").text)
            # Live calls never shown above either limit.
            assert n["live"] <= n["limit"] == 3 and tenant_live <= tenant_limit == 6, n
            assert n["total"] == 240
            seen.append(n["finished"])
            if shot is None and 0.3 <= n["finished"] / 240 <= 0.7 and n["live"]:
                shot = str(tmp_path / "dashboard.png")
                d.save_screenshot(shot)
            if n["status"] == "completed":
                break
            time.sleep(0.4)
        assert n["status"] == "completed", n
        # The numbers moved while we watched, only forward, polled by the page
        # itself (nothing reloaded it).
        distinct = sorted(set(seen))
        assert len(distinct) >= 3 and seen == sorted(seen), seen
        assert shot, f"no screenshot mid-run: {seen}"

        # At the end the page says what PostgreSQL says.
        pg = dict(stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s"
                            " GROUP BY 1", run))
        wait_until(lambda: (lambda n: n["completed"] == pg.get("completed", 0) and
                            n["failed"] == pg.get("failed", 0))(row_numbers(d, run)), 5,
                   "the last poll to land")
        n = row_numbers(d, run)
        assert n["finished"] == 240 and n["cancelled"] == 0 and n["live"] == 0
        assert n["failed"] >= 240 // 7          # every 7th number is busy
        assert n["eta"] == "done"
        # The outcomes chart (the selected batch is the newest that ran).
        assert d.find_element(By.ID, "detail-name").text == "spring campaign"
        reasons = dict(stack.sql("SELECT end_reason, count(*) FROM recipients"
                                 " WHERE batch_id = %s GROUP BY 1", run))
        bars = d.execute_script(READ_OUTCOMES)
        assert bars == reasons and bars["dial_busy"] >= 240 // 7, (bars, reasons)
        legend = d.find_element(By.ID, "legend").text
        assert f"completed {pg['completed']}" in legend and f"failed {pg['failed']}" in legend
        wait_until(lambda: d.find_element(By.ID, "tenant-live").text == "0 / 6", 10,
                   "the tenant's live calls to reach 0")
        # The cancelled batch, too, shows what PostgreSQL holds.
        (canc,) = stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s"
                            " AND status = 'cancelled'", old)[0]
        assert row_numbers(d, old)["cancelled"] == canc > 0

        # The key stayed in this tab's sessionStorage and out of every URL;
        # the data requests carried it as a Bearer header; nothing came from
        # another origin (no CDN, no external asset).
        assert d.execute_script("return window.localStorage.length") == 0
        assert d.execute_script("return sessionStorage.getItem('batchcall.key')") == t["api_key"]
        sent = [json.loads(e["message"])["message"] for e in d.get_log("performance")]
        reqs = [m["params"]["request"] for m in sent if m["method"] == "Network.requestWillBeSent"]
        assert reqs and all(r["url"].startswith(stack.api + "/") for r in reqs), \
            [r["url"] for r in reqs]
        assert not [r["url"] for r in reqs if t["api_key"] in r["url"]]
        data = [r for r in reqs if r["url"].startswith(stack.api + "/progress/batches")]
        assert len(data) >= 5
        assert any(r["headers"].get("Authorization") == "Bearer " + t["api_key"] for r in data)
        assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"
                    and "401" not in e["message"]]

        d.find_element(By.ID, "forget").click()
        wait_until(lambda: d.find_element(By.ID, "login").is_displayed(), 10, "the key form again")
        assert d.execute_script("return sessionStorage.length") == 0
    finally:
        d.quit()

    assert os.path.getsize(shot) > 20000
    if os.environ.get("BC_UPDATE_DOCS") == "1":
        shutil.copy(shot, os.path.join(ROOT, "docs", "img", "dashboard.png"))
