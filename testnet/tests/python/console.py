"""Drives the analyst's web console (/ui/) of a two-node testnet in headless Chromium.

Usage: console.py TESTNET_JSON --chromium PATH --chromedriver PATH --screenshots DIR
                  --stix FILE [--only SCENARIO]...

Each scenario is one function below. Each starts its own browser with a fresh profile,
signs in as an analyst would (typing the token into the form) and checks what the pages
show; indicators of the other organisation are published over the node's API, as that
organisation's own tools would. Every page visited is photographed at a laptop width
(1280x900) and a phone width (390x844) into the screenshots directory, for a person to
look at, and checked at both with axe-core (bundled by selenium-axe-python): a violation
of impact serious or critical is a failure, as is a page that does not fit the phone's
width or a POST form without its csrf field.

Prints one JSON object, the report, on stdout (progress goes to stderr); the Rust test
(testnet/tests/console.rs) asserts on it. A failed scenario is recorded with why, and a
screenshot and the HTML of its browser's pages are kept as FAILED-*; the other scenarios
still run, and the exit status is then not zero.
"""

import argparse
import base64
import contextlib
import html
import http.server
import json
import os
import re
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from selenium_axe_python import Axe

# Every wait, for a page, an element or an entry crossing the mesh (as in the Rust tests).
TIMEOUT = 60
# (name, width, height, mobile): mobile makes Chromium honour the page's viewport meta tag
# as a phone does, so a page without one is laid out 980 px wide and caught.
LAPTOP = ("laptop", 1280, 900, False)
PHONE = ("phone", 390, 844, True)
# Taller full-page screenshots are cut here: a person reads the top of a long list.
MAX_SHOT_HEIGHT = 6000
# axe-core impacts that fail the test; "minor" and "moderate" are reported only.
FAILING_IMPACTS = {"serious", "critical"}
COOKIE = "threatmesh_session"
NAV = [
    ("nav-search", "/ui/search"),
    ("nav-recent", "/ui/recent"),
    ("nav-publish", "/ui/publish"),
    ("nav-activity", "/ui/activity"),
    ("nav-overview", "/ui/overview"),
]
# What a hostile member publishes: each would run script if a page took it as markup.
SCRIPT = "<script>window.__xss=1</script>"
LINK = '<a href="javascript:window.__xss=1">x</a>'
IMAGE = '<img src=x onerror="window.__xss=1">'
STIX_WITH_SCRIPT = "[x-custom:name = '<script>window.__xss=1</script>']"


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- the node's API, as an organisation's own tools use it -------------------------------


def api(node, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": "Bearer " + node["token"]}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        node["api"] + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        raise AssertionError(
            f"{method} {path} on {node['organisation']}'s node: {error.code} "
            f"{error.read()[:500]!r}"
        ) from None


def now_ms():
    # A second in the past, so that no node takes the entry for one from the future.
    return int(time.time() * 1000) - 1000


def indicator(kind, value, **fields):
    return {
        "type": "indicator",
        "kind": kind,
        "value": value,
        "valid_from": now_ms(),
        **fields,
    }


def publish(node, tlp, items, recipients=None):
    body = {"tlp": tlp, "items": items}
    if recipients is not None:
        body["distribution"] = {"recipients": recipients}
    return api(node, "POST", "/api/v1/publish", body)["entries"]


def asserted_by(node, value):
    """Organisation (hex) -> assertion, for every organisation `node` holds asserting
    `value` (a bare value, as an analyst types it)."""
    answer = api(node, "POST", "/api/v1/lookup", {"values": [value]})
    assert not answer["invalid"], f"the node refuses {value!r}: {answer['invalid']}"
    return {a["org"]: a for found in answer["found"] for a in found["assertions"]}


# --- the browser -------------------------------------------------------------------------


class Run:
    """What every scenario shares: the nodes, the browser's paths and what pages showed."""

    def __init__(self, args):
        with open(args.testnet) as file:
            nodes = json.load(file)
        assert len(nodes) >= 2, f"{args.testnet} lists {len(nodes)} nodes, not two"
        self.a, self.b = nodes[0], nodes[1]
        for node in (self.a, self.b):
            node["org"] = api(node, "GET", "/api/v1/status")["organisation"]
        self.chromium = args.chromium
        self.chromedriver = args.chromedriver
        self.shots = args.screenshots
        self.stix = os.path.abspath(args.stix)
        self.scenario = "setup"
        self.pages = {}
        self.problems = []
        self.browser_version = None


@contextlib.contextmanager
def browser(run):
    """A headless Chromium with a profile of its own, at the laptop width; on a failure
    inside, its pages are kept as FAILED-<scenario>-* before it is closed."""
    with tempfile.TemporaryDirectory(
        prefix="threatmesh-chromium-", ignore_cleanup_errors=True
    ) as profile:
        options = Options()
        options.binary_location = run.chromium
        for argument in [
            "--headless=new",
            # CI runs as root in a container, where Chromium's sandbox cannot start.
            "--no-sandbox",
            f"--user-data-dir={profile}",
            # Containers give /dev/shm 64 MiB, and Chromium crashes when it runs out.
            "--disable-dev-shm-usage",
            # Nothing to fetch: the machine reaches no update or sync service.
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--no-default-browser-check",
            "--window-size=1280,900",
            "--lang=en-GB",
        ]:
            options.add_argument(argument)
        service = Service(
            executable_path=run.chromedriver,
            # At INFO it logs every command with its answer (screenshots too): a megabyte
            # a browser.
            service_args=["--log-level=WARNING"],
            log_output=os.path.join(run.shots, "chromedriver.log"),
        )
        try:
            driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as error:
            raise AssertionError(
                f"{run.chromedriver} could not start {run.chromium}: {error.msg} "
                f"(see {os.path.join(run.shots, 'chromedriver.log')})"
            ) from None
        run.browser_version = driver.capabilities.get("browserVersion")
        try:
            driver.set_page_load_timeout(TIMEOUT)
            driver.set_script_timeout(TIMEOUT)
            emulate(driver, LAPTOP)
            yield driver
        except BaseException:
            keep_failure(run, driver)
            raise
        finally:
            driver.quit()


def keep_failure(run, driver):
    """Best effort: the browser may be what failed."""
    try:
        for index, handle in enumerate(driver.window_handles):
            driver.switch_to.window(handle)
            stem = os.path.join(run.shots, f"FAILED-{run.scenario}-{index}")
            driver.save_screenshot(stem + ".png")
            with open(stem + ".html", "w", encoding="utf-8") as file:
                file.write(driver.page_source)
            log(f"kept {stem}.png and .html ({driver.current_url})")
    except WebDriverException as error:
        log(f"could not keep the failed page: {error.msg}")


def emulate(driver, size):
    _, width, height, mobile = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def path_of(driver):
    return urllib.parse.urlsplit(driver.current_url).path


def where(driver):
    return f"{path_of(driver)} ({driver.title!r})"


def wait_loaded(driver):
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.execute_script("return document.readyState") == "complete",
        f"{driver.current_url} did not finish loading",
    )


def go(driver, node, path):
    driver.get(node["api"] + path)
    wait_loaded(driver)


def need(driver, selector, why=""):
    try:
        return driver.find_element(By.CSS_SELECTOR, selector)
    except NoSuchElementException:
        said = " ".join(page_text(driver).split())[:200]
        raise AssertionError(
            f"no {selector} on {where(driver)}"
            + (f": {why}" if why else "")
            + f"; the page says: {said!r}"
        ) from None


def type_into(field, text):
    field.clear()
    field.send_keys(text)


def submit(driver, selector):
    """Clicks `selector` (a button or a link) and waits for the page it leads to."""
    old = driver.find_element(By.TAG_NAME, "html")
    need(driver, selector).click()
    WebDriverWait(driver, TIMEOUT).until(
        expected_conditions.staleness_of(old),
        f"{selector} on {where(driver)} led to no new page",
    )
    wait_loaded(driver)


def sign_in(driver, node, token=None):
    go(driver, node, "/ui/signin")
    type_into(need(driver, "#token"), token or node["token"])
    submit(driver, "#signin-submit")


def page_text(driver):
    return driver.execute_script("return document.body ? document.body.innerText : ''")


# --- what every page is checked for -------------------------------------------------------


def photograph(driver, path):
    """The whole page, not only what the window shows (cut at MAX_SHOT_HEIGHT)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    content = metrics.get("cssContentSize") or metrics["contentSize"]
    viewport = metrics.get("cssLayoutViewport") or metrics["layoutViewport"]
    clip = {
        "x": 0,
        "y": 0,
        "width": max(content["width"], viewport["clientWidth"]),
        "height": min(max(content["height"], viewport["clientHeight"]), MAX_SHOT_HEIGHT),
        "scale": 1,
    }
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
    )
    with open(path, "wb") as file:
        file.write(base64.b64decode(shot["data"]))


def axe(driver):
    """axe-core's violations on the page, each cut to what a person needs to find it."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        Axe(driver).inject()
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
            .then(r => done({violations: r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
            }))}))
            .catch(e => done({error: String(e)}));
        """
    )
    assert "error" not in result, f"axe-core failed on {where(driver)}: {result['error']}"
    return result["violations"]


def photograph_only(run, driver, name):
    """Screenshots at both widths of a page that is not the console's own (a refusal)."""
    for size in (LAPTOP, PHONE):
        emulate(driver, size)
        photograph(driver, os.path.join(run.shots, f"{name}-{size[0]}.png"))
    emulate(driver, LAPTOP)


def check_page(run, driver, name):
    """Photographs the page at both widths and checks it there: axe-core, and at the phone
    width that it fits the screen. Every POST form on it must carry a csrf field."""
    base, count = name, 2
    while name in run.pages:
        name, count = f"{base}-{count}", count + 1
    page = {"path": path_of(driver), "title": driver.title}
    problems = []
    for size in (LAPTOP, PHONE):
        label, width = size[0], size[1]
        emulate(driver, size)
        layout = driver.execute_script(
            "return {viewport: window.innerWidth,"
            " page: document.documentElement.scrollWidth}"
        )
        screenshot = f"{name}-{label}.png"
        photograph(driver, os.path.join(run.shots, screenshot))
        violations = axe(driver)
        failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
        page[label] = {
            "screenshot": screenshot,
            "layout": layout,
            "violations": [f"{v['impact']} {v['id']}" for v in violations],
        }
        for v in failing:
            problems.append(
                f"{name} at the {label} width: axe-core {v['impact']} {v['id']} "
                f"({v['help']}) on {'; '.join(v['targets'])}"
            )
        if label == PHONE[0] and (
            layout["viewport"] > width or layout["page"] > layout["viewport"]
        ):
            problems.append(
                f"{name} does not fit a phone: {layout['page']} px wide in a viewport of "
                f"{layout['viewport']} px on a {width} px screen (a viewport meta tag and "
                f"a layout that wraps or scrolls its tables are needed)"
            )
    emulate(driver, LAPTOP)
    page["forms_without_csrf"] = driver.execute_script(
        """
        return [...document.forms]
            .filter(f => f.method === 'post')
            .filter(f => !(f.querySelector('input[type=hidden][name=csrf]') || {}).value)
            .map(f => f.getAttribute('id') || f.getAttribute('action'));
        """
    )
    for form in page["forms_without_csrf"]:
        problems.append(f"{name}: POST form {form} carries no hidden csrf field")
    page["problems"] = problems
    run.pages[name] = page
    run.problems.extend(problems)
    log(f"  page {name}: {page['path']}, {len(problems)} problems")


# --- reading the console's pages ----------------------------------------------------------


def search(driver, node, values):
    """Searches `values` on `node`'s console: (value -> [assertion rows], not found)."""
    go(driver, node, "/ui/search")
    type_into(need(driver, "#values"), "\n".join(values))
    submit(driver, "#search-submit")
    found = {}
    for section in driver.find_elements(By.CSS_SELECTOR, "section.result"):
        rows = []
        for row in section.find_elements(By.CSS_SELECTOR, "tr.assertion"):
            cells = {"org": row.get_attribute("data-org")}
            for cell in ("status", "tlp", "confidence", "context"):
                found_cells = row.find_elements(By.CSS_SELECTOR, "." + cell)
                cells[cell] = found_cells[0].text.strip() if found_cells else ""
            rows.append(cells)
        found[section.get_attribute("data-value")] = rows
    not_found = [li.text.strip() for li in driver.find_elements(By.CSS_SELECTOR, "#not-found li")]
    return found, not_found


def wait_for_search(driver, node, values, done, what):
    """Searches again until `done(found)` holds: entries take a moment to cross the mesh."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        found, not_found = search(driver, node, values)
        if done(found):
            return found, not_found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {TIMEOUT} s waiting for {what}; the last search showed "
                f"{found}, not found {not_found}"
            )
        time.sleep(0.5)


def orgs_of(found, value):
    return {row["org"] for row in found.get(value, [])}


def recent_rows(driver):
    return [
        {
            "org": row.get_attribute("data-org"),
            "tlp": tlp_name(row.get_attribute("data-tlp")),
            "sealed": "sealed" in (row.get_attribute("class") or "").split(),
            "text": row.text,
        }
        for row in driver.find_elements(By.CSS_SELECTOR, "#recent tr.entry")
    ]


def tlp_name(text):
    """`TLP:AMBER+STRICT` or `amber+strict` alike as `amber+strict`."""
    text = (text or "").strip().lower()
    return text[4:] if text.startswith("tlp:") else text


def choose(select, *wanted):
    """Picks the option whose value or text is one of `wanted` (in any case, a TLP with or
    without its `TLP:`)."""
    wanted = {tlp_name(name) for name in wanted}
    for index, option in enumerate(Select(select).options):
        # The value property is the text when the option has no value attribute.
        if wanted & {tlp_name(option.get_property("value")), tlp_name(option.text)}:
            Select(select).select_by_index(index)
            return
    raise AssertionError(
        f"select {select.get_attribute('name')} offers none of {sorted(wanted)}: "
        f"{[o.text for o in Select(select).options]}"
    )


def fetch(driver, url):
    """GETs `url` from the page, with its cookies, as following a download link does."""
    answer = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: 'same-origin'})
            .then(r => r.text().then(body => done({status: r.status, body})))
            .catch(e => done({error: String(e)}));
        """,
        url,
    )
    assert "error" not in answer, f"fetching {url}: {answer['error']}"
    assert answer["status"] == 200, f"{url} answered {answer['status']}: {answer['body'][:300]}"
    return answer["body"]


PUBLISH_FIELDS = ["values", "tlp", "confidence", "expires_days", "labels", "description"]


def fill_publish(driver, fields):
    for name, value in fields.items():
        field = need(driver, f"#publish [name={name}]")
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            type_into(field, value)


def read_publish(driver):
    """The publish form's fields as typed, compared loosely: lines and labels trimmed."""
    form = {}
    for name in PUBLISH_FIELDS:
        form[name] = (need(driver, f"#publish [name={name}]").get_property("value") or "").strip()
    form["values"] = [line.strip() for line in form["values"].splitlines() if line.strip()]
    form["labels"] = [label.strip() for label in form["labels"].split(",") if label.strip()]
    return form


def hex_ids(text, shortest=12):
    return re.findall(r"[0-9a-f]{%d,}" % shortest, text.lower())


def recipient_box(driver, node):
    """The recipients checkbox naming `node`'s organisation (by id, name or label)."""
    return driver.execute_script(
        """
        const [org, name] = [arguments[0], arguments[1]];
        return [...document.querySelectorAll('#publish input[name=recipients]')].find(i =>
            i.value === org || i.value === name
            || [...(i.labels || [])].some(l => l.textContent.includes(name))) || null;
        """,
        node["org"],
        node["organisation"],
    )


# --- the scenarios ------------------------------------------------------------------------


def sign_in_refuses_a_wrong_token(run):
    """/ui/ sends a stranger to sign-in; a wrong token (the other node's, then nonsense)
    is refused with an alert and gives no session; the right one opens the overview with
    a session cookie that page scripts cannot read and other sites cannot make it send."""
    a, b = run.a, run.b
    seen = {}
    with browser(run) as driver:
        go(driver, a, "/ui/")
        seen["unsigned_lands_on"] = path_of(driver)
        assert seen["unsigned_lands_on"] == "/ui/signin", (
            f"/ui/ without a session led to {where(driver)}, not /ui/signin"
        )
        assert need(driver, "#token").get_attribute("type") == "password", (
            "the token field is not a password field"
        )
        check_page(run, driver, "signin")
        seen["refusals"] = []
        wrong = [("other node's", b["token"]), ("made up", "no-such-token-" + "x" * 24)]
        for label, token in wrong:
            type_into(need(driver, "#token"), token)
            submit(driver, "#signin-submit")
            error = need(driver, "#error", f"the {label} token was not refused with #error")
            assert error.is_displayed() and error.text.strip(), "#error is empty or hidden"
            assert error.get_attribute("role") == "alert", "#error has no role=alert"
            assert path_of(driver) == "/ui/signin", f"a wrong token led to {where(driver)}"
            need(driver, "#signin", "the sign-in form is gone after a refusal")
            seen["refusals"].append({"token": label, "error": error.text.strip()})
        check_page(run, driver, "signin-refused")
        go(driver, a, "/ui/overview")
        seen["after_refusal_lands_on"] = path_of(driver)
        assert seen["after_refusal_lands_on"] == "/ui/signin", (
            f"after refused sign-ins /ui/overview showed {where(driver)}"
        )
        type_into(need(driver, "#token"), a["token"])
        submit(driver, "#signin-submit")
        seen["signed_in_lands_on"] = path_of(driver)
        assert seen["signed_in_lands_on"] == "/ui/overview", (
            f"the right token led to {where(driver)}, not /ui/overview"
        )
        cookie = driver.get_cookie(COOKIE)
        assert cookie, f"no {COOKIE} cookie after signing in: {driver.get_cookies()}"
        seen["cookie"] = {"http_only": cookie.get("httpOnly"), "same_site": cookie.get("sameSite")}
        readable = driver.execute_script("return document.cookie")
        seen["cookie_readable_by_script"] = COOKIE in readable
        assert seen["cookie"] == {"http_only": True, "same_site": "Strict"}, seen["cookie"]
        assert not seen["cookie_readable_by_script"], "page scripts can read the session"
    return seen


def overview_and_activity_show_the_federation(run):
    """The overview names the federation and both members, the other one connected; the
    activity page draws its two charts and lists the connection to the other node."""
    a, b = run.a, run.b
    seen = {}
    with browser(run) as driver:
        sign_in(driver, a)
        seen["federation"] = need(driver, "#federation-name").text.strip()
        seen["charter_version"] = need(driver, "#charter-version").text.strip()
        members = {}
        for row in driver.find_elements(By.CSS_SELECTOR, "#members tr.member"):
            members[row.get_attribute("data-org")] = row.find_element(
                By.CSS_SELECTOR, ".connected"
            ).text.strip()
        seen["members"] = members
        check_page(run, driver, "overview")
        assert seen["federation"] == "Testnet federation", f"federation {seen['federation']!r}"
        assert re.search(r"\d", seen["charter_version"]), (
            f"charter version {seen['charter_version']!r} has no number"
        )
        assert set(members) == {a["organisation"], b["organisation"]}, f"members {members}"
        # The node's own organisation is not a peer of itself: its row says "—".
        assert members[a["organisation"]] == "—", f"this node's own row: {members}"
        others = {org: connected for org, connected in members.items() if org != a["organisation"]}
        assert set(others.values()) <= {"yes", "no"}, f".connected not yes/no: {members}"
        assert members[b["organisation"]] == "yes", f"{b['organisation']} not connected"

        submit(driver, "#nav-activity")
        assert path_of(driver) == "/ui/activity", f"#nav-activity led to {where(driver)}"
        need(driver, "svg#propagation-chart")
        need(driver, "svg#ingest-chart")
        connections = need(driver, "table#connections").text
        seen["connection_to_b_listed"] = (
            b["organisation"] in connections or b["peer_id"] in connections
        )
        check_page(run, driver, "activity")
        assert seen["connection_to_b_listed"], (
            f"#connections names neither {b['organisation']} nor {b['peer_id']}: {connections!r}"
        )
    return seen


def search_shows_both_organisations(run):
    """A value both organisations assert, searched defanged on B's console, shows one
    row per organisation with its own status, TLP and confidence; a value nobody asserts
    is listed as not found; the CSV and STIX exports hold the same result."""
    a, b = run.a, run.b
    value, missing = "203.0.113.41", "198.51.100.250"
    publish(a, "green", [indicator("ipv4", value, confidence=70, context={"threat": "QakBot"})])
    publish(b, "amber", [indicator("ipv4", value, confidence=40, context={"threat": "QakBot"})])
    seen = {}
    with browser(run) as driver:
        sign_in(driver, b)
        go(driver, b, "/ui/search")
        check_page(run, driver, "search")
        found, not_found = wait_for_search(
            driver,
            b,
            ["203.0.113[.]41", missing],
            lambda found: orgs_of(found, value) >= {a["organisation"], b["organisation"]},
            f"both organisations' assertions of {value} on {b['organisation']}'s console",
        )
        check_page(run, driver, "search-results")
        rows = {row["org"]: row for row in found[value]}
        seen["rows"] = rows
        seen["not_found"] = not_found
        assert list(found) == [value], f"results for {list(found)}, not only {value}"
        for org, tlp, confidence in [(a, "green", "70"), (b, "amber", "40")]:
            row = rows[org["organisation"]]
            assert row["status"] == "active", f"{org['organisation']}: status {row}"
            assert tlp in row["tlp"].lower(), f"{org['organisation']}: TLP {row}"
            assert row["confidence"] == confidence, f"{org['organisation']}: confidence {row}"
        assert any(missing in item for item in not_found), f"{missing} not in {not_found}"

        csv = fetch(driver, need(driver, "a#export-csv").get_attribute("href"))
        seen["csv_rows_with_value"] = sum(value in line for line in csv.splitlines())
        assert seen["csv_rows_with_value"] == len(rows), (
            f"the CSV export has {seen['csv_rows_with_value']} rows for {value}, the page "
            f"{len(rows)} assertions:\n{csv}"
        )
        bundle = json.loads(fetch(driver, need(driver, "a#export-stix").get_attribute("href")))
        objects = bundle.get("objects", [])
        patterns = [o.get("pattern", "") for o in objects if o.get("type") == "indicator"]
        seen["stix_indicators_with_value"] = sum(value in p for p in patterns)
        assert bundle.get("type") == "bundle", f"the STIX export is no bundle: {bundle}"
        assert seen["stix_indicators_with_value"] >= 1, f"no indicator of {value}: {patterns}"
    return seen


def publish_form_reaches_the_other_node(run):
    """A's analyst publishes through the form: a value that is no indicator is refused
    next to its field with what was typed kept and nothing published; then TLP:GREEN
    values, and a TLP:RED one for B alone, reach B's console."""
    a, b = run.a, run.b
    seen = {}
    with browser(run) as driver:
        sign_in(driver, a)
        submit(driver, "#nav-publish")
        check_page(run, driver, "publish")
        fields = {
            "values": "198.51.100.77\nnot an indicator at all",
            "tlp": "green",
            "confidence": "80",
            "expires_days": "30",
            "labels": "c2, console-test",
            "description": "Published from the console by the browser test",
        }
        fill_publish(driver, fields)
        submit(driver, "#publish-submit")
        error = need(driver, "#error-values", "a value that is no indicator was not refused")
        assert error.is_displayed() and error.text.strip(), "#error-values is empty or hidden"
        kept = read_publish(driver)
        seen["refused_kept"] = kept["values"]
        assert "not an indicator at all" in kept["values"], f"the form lost the values: {kept}"
        assert not asserted_by(a, "198.51.100.77"), "a refused form published something"
        check_page(run, driver, "publish-error")

        fill_publish(driver, {**fields, "values": "198.51.100.77\nmalware-drop[.]example"})
        submit(driver, "#publish-submit")
        published = need(driver, "#published", "the form was not published").text
        check_page(run, driver, "published")
        entry = asserted_by(a, "198.51.100.77").get(a["org"], {}).get("entry", "")
        seen["entry_shown"] = any(entry.startswith(shown) for shown in hex_ids(published))
        assert seen["entry_shown"], f"#published ({published!r}) does not show entry {entry}"

        go(driver, a, "/ui/publish")
        fill_publish(driver, {**fields, "values": "198.51.100.78", "tlp": "red"})
        box = recipient_box(driver, b)
        assert box is not None, f"no recipients checkbox for {b['organisation']} at TLP:RED"
        assert box.is_displayed(), "the recipients are hidden at TLP:RED"
        if not box.is_selected():
            box.click()
        submit(driver, "#publish-submit")
        need(driver, "#published", "the TLP:RED form was not published")
    with browser(run) as driver:
        sign_in(driver, b)
        found, _ = wait_for_search(
            driver,
            b,
            ["198.51.100.77", "malware-drop[.]example", "198.51.100.78"],
            lambda found: all(
                a["organisation"] in orgs_of(found, v)
                for v in ["198.51.100.77", "malware-drop.example", "198.51.100.78"]
            ),
            f"the values published on {a['organisation']}'s console on {b['organisation']}'s",
        )
        check_page(run, driver, "search-published")
        row = next(r for r in found["198.51.100.77"] if r["org"] == a["organisation"])
        red = next(r for r in found["198.51.100.78"] if r["org"] == a["organisation"])
        seen["on_b"] = {"green": row, "red": red}
        assert "green" in row["tlp"].lower() and row["confidence"] == "80", row
        assert fields["description"] in (row["context"] or ""), f"context: {row}"
        assert "red" in red["tlp"].lower(), f"the TLP:RED value shows {red}"
    return seen


def stix_upload_is_dry_run_first(run):
    """A STIX file uploaded on A's console is read and counted, and nothing is published
    until the dry run is confirmed; then its indicator reaches B's console."""
    a, b = run.a, run.b
    value = "10.0.0.0"
    seen = {}
    with browser(run) as driver:
        sign_in(driver, a)
        go(driver, a, "/ui/publish")
        need(driver, "#import #file").send_keys(run.stix)
        choose(need(driver, "#import #format"), "stix")
        submit(driver, "#import-submit")
        seen["dry_run"] = need(driver, "#dry-run", "the upload showed no dry run").text.strip()
        check_page(run, driver, "import-dry-run")
        assert re.search(r"\b1\b", seen["dry_run"]), (
            f"the dry run does not count the 1 indicator: {seen['dry_run']!r}"
        )
        assert not asserted_by(a, value), "the dry run published the file"
        need(driver, "#import-confirm")
        submit(driver, "#import-confirm-submit")
        seen["imported"] = need(driver, "#imported", "confirming did not import").text.strip()
        check_page(run, driver, "imported")
        assert a["org"] in asserted_by(a, value), f"{value} is not on A after the import"
    with browser(run) as driver:
        sign_in(driver, b)
        wait_for_search(
            driver,
            b,
            [value],
            lambda found: a["organisation"] in orgs_of(found, value),
            f"the imported {value} on {b['organisation']}'s console",
        )
    return seen


def recent_filters_and_sealed_entries(run):
    """B's recent page lists both organisations' entries; A's TLP:RED entry for A alone
    shows as sealed, naming its recipient, with none of its content; the filters keep only
    what they name."""
    a, b = run.a, run.b
    secret = "198.51.100.66"
    publish(a, "red", [indicator("ipv4", secret, confidence=90)], recipients=[a["org"]])
    publish(a, "clear", [indicator("ipv4", "198.51.100.68")])
    publish(b, "green", [indicator("ipv4", "198.51.100.67")])
    seen = {}
    with browser(run) as driver:
        sign_in(driver, b)
        deadline = time.monotonic() + TIMEOUT
        while True:
            go(driver, b, "/ui/recent")
            rows = recent_rows(driver)
            sealed = [r for r in rows if r["sealed"] and r["org"] == a["organisation"]]
            clear = [r for r in rows if r["tlp"] == "clear" and r["org"] == a["organisation"]]
            if sealed and clear:
                break
            assert time.monotonic() < deadline, (
                f"timed out waiting for A's sealed and TLP:CLEAR entries on B's page: {rows}"
            )
            time.sleep(0.5)
        check_page(run, driver, "recent")
        seen["orgs"] = sorted({r["org"] for r in rows})
        seen["sealed_names_recipient"] = any(
            a["organisation"] in r["text"] or a["org"][:8] in r["text"].lower() for r in sealed
        )
        seen["secret_shown"] = secret in page_text(driver)
        assert set(seen["orgs"]) == {a["organisation"], b["organisation"]}, seen["orgs"]
        assert seen["sealed_names_recipient"], f"the sealed entry names no recipient: {sealed}"
        assert not seen["secret_shown"], "B's recent page shows the content of a sealed entry"

        choose(need(driver, "#filters [name=org]"), a["organisation"], a["org"])
        choose(need(driver, "#filters [name=tlp]"), "clear")
        old = driver.find_element(By.TAG_NAME, "html")
        driver.execute_script("document.getElementById('filters').requestSubmit()")
        WebDriverWait(driver, TIMEOUT).until(expected_conditions.staleness_of(old))
        wait_loaded(driver)
        filtered = recent_rows(driver)
        seen["filtered"] = sorted({(r["org"], r["tlp"]) for r in filtered})
        check_page(run, driver, "recent-filtered")
        assert seen["filtered"] == [(a["organisation"], "clear")], (
            f"filtered on {a['organisation']} and clear, the page lists {seen['filtered']}"
        )
    return seen


def published_markup_is_shown_as_text(run):
    """A member publishes script, a javascript: link and an image with an onerror in its
    labels, context and a STIX pattern; B's console shows all of it as text: no script
    runs, no element of it is made, the strings are there literally."""
    a, b = run.a, run.b
    description = f"{SCRIPT} {LINK} {IMAGE}"
    hostile = {
        "confidence": 60,
        "labels": [SCRIPT, LINK],
        "context": {
            "threat": SCRIPT,
            "campaign": LINK,
            "description": description,
            "external_references": [{"source": SCRIPT, "url": "javascript:window.__xss=1"}],
        },
    }
    publish(
        a,
        "green",
        [
            indicator("domain", "xss-check.example", **hostile),
            indicator("stix-pattern", STIX_WITH_SCRIPT, **hostile),
        ],
    )
    seen = {}
    with browser(run) as driver:
        sign_in(driver, b)
        found, _ = wait_for_search(
            driver,
            b,
            ["xss-check.example", STIX_WITH_SCRIPT],
            lambda found: a["organisation"] in orgs_of(found, "xss-check.example")
            and a["organisation"] in orgs_of(found, STIX_WITH_SCRIPT),
            "the hostile entries on B's console",
        )
        seen["search"] = markup_check(driver)
        row = next(r for r in found["xss-check.example"] if r["org"] == a["organisation"])
        seen["context_literal"] = description in (row["context"] or "")
        check_page(run, driver, "hostile-search")
        go(driver, b, "/ui/recent")
        seen["recent"] = markup_check(driver)
        check_page(run, driver, "hostile-recent")
    for page in ("search", "recent"):
        check = seen[page]
        assert check["xss"] is None, f"script from a member ran on the {page} page"
        assert not check["made"], (
            f"the {page} page made elements of a member's text: {check['made']}"
        )
    for text in (SCRIPT, LINK, IMAGE, STIX_WITH_SCRIPT):
        assert text in seen["search"]["text"], f"the search page does not show {text!r} as text"
    assert seen["context_literal"], f".context does not show the description as text: {row}"
    del seen["search"]["text"], seen["recent"]["text"]
    return seen


def markup_check(driver):
    """Whether the payload ran (`xss`), the elements made of it (`made`): a script holding
    it, a handler or srcdoc holding it, or a javascript: address (the payload may well sit
    in a data-value, a title or a link's query string: that is text), and the page's text."""
    return driver.execute_script(
        """
        const code = /^(on.*|srcdoc)$/i, address = /^(href|xlink:href|src|action|formaction)$/i;
        // As browsers read a scheme: control characters and spaces do not count.
        const scheme = v => v.replace(/[\\u0000-\\u0020]/g, '').toLowerCase();
        const made = [...document.querySelectorAll('*')].filter(e =>
            (e.tagName === 'SCRIPT' && e.textContent.includes('__xss'))
            || [...e.attributes].some(a =>
                (code.test(a.name) && a.value.includes('__xss'))
                || (address.test(a.name) && scheme(a.value).startsWith('javascript:'))))
            .map(e => e.outerHTML.slice(0, 120));
        return {xss: typeof window.__xss === 'undefined' ? null : String(window.__xss),
                made, text: document.body.innerText};
        """
    )


def expired_session_keeps_the_publish_form(run):
    """An analyst types into the publish form, the session ends meanwhile (signed out in
    another tab, the browser still offering the old cookie, as with an expired session);
    posting the form leads to sign-in, publishes nothing, and after signing in again the
    form holds what was typed, ready to be sent."""
    a = run.a
    seen = {}
    typed = {
        "values": "198.51.100.88\nstale-session[.]example",
        "tlp": "amber",
        "confidence": "65",
        "expires_days": "14",
        "labels": "phishing, kept",
        "description": "Typed before the session ended",
    }
    with browser(run) as driver:
        sign_in(driver, a)
        go(driver, a, "/ui/publish")
        fill_publish(driver, typed)
        before = read_publish(driver)
        stale = driver.get_cookie(COOKIE)
        assert stale, f"no {COOKIE} cookie after signing in"
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        go(driver, a, "/ui/overview")
        submit(driver, "#signout-submit")
        seen["signed_out_lands_on"] = path_of(driver)
        check_page(run, driver, "signed-out")
        go(driver, a, "/ui/overview")
        seen["after_sign_out_lands_on"] = path_of(driver)
        driver.close()
        driver.switch_to.window(first)
        assert seen["signed_out_lands_on"] == "/ui/signin", f"sign-out led to {seen}"
        assert seen["after_sign_out_lands_on"] == "/ui/signin", "the session outlived sign-out"
        # The browser still sends the session the node has ended.
        driver.delete_cookie(COOKIE)
        driver.add_cookie(
            {
                "name": COOKIE,
                "value": stale["value"],
                "path": stale.get("path", "/"),
                "httpOnly": True,
                "sameSite": "Strict",
            }
        )
        submit(driver, "#publish-submit")
        # The sign-in form answers the post itself (at the post's address), so it can
        # carry what was typed.
        seen["expired_post_lands_on"] = path_of(driver)
        need(driver, "#signin", f"posting with an ended session led to {where(driver)}")
        assert not asserted_by(a, "198.51.100.88"), "an ended session published"
        check_page(run, driver, "session-expired-signin")
        type_into(need(driver, "#token"), a["token"])
        submit(driver, "#signin-submit")
        seen["signed_in_again_lands_on"] = path_of(driver)
        if path_of(driver) != "/ui/publish":
            submit(driver, "#nav-publish")
        after = read_publish(driver)
        seen["kept"] = after == before
        check_page(run, driver, "session-restored-publish")
        assert seen["kept"], f"typed {before}, the form holds {after} after signing in again"
        assert not asserted_by(a, "198.51.100.88"), "signing in again published by itself"
        submit(driver, "#publish-submit")
        need(driver, "#published", "the restored form was not published")
        seen["published_after"] = a["org"] in asserted_by(a, "198.51.100.88")
        assert seen["published_after"], "the restored form's value is not on A"
    return seen


@contextlib.contextmanager
def elsewhere(pages):
    """Another site: an http.server on 127.0.0.1 at a free port, serving `pages`
    (file name -> HTML). Yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def forged_publish(node, value):
    """A page that makes its visitor's browser post the publish form to `node`."""
    fields = {
        "csrf": "forged",
        "values": value,
        "tlp": "clear",
        "confidence": "50",
        "expires_days": "30",
        "labels": "forged",
        "description": "posted by another site",
    }
    inputs = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items()
    )
    return (
        '<!doctype html><html lang="en"><head><title>Elsewhere</title></head><body>'
        f'<form id="forged" method="post" action="{html.escape(node["api"])}/ui/publish">'
        f"{inputs}</form>"
        "<script>document.getElementById('forged').submit()</script></body></html>"
    )


def cross_site_form_posts_are_refused(run):
    """A signed-in analyst visits pages that post the publish form to A's console: one on
    another port of 127.0.0.1 (same site, so the cookie goes along, and only the node's
    own checks stand in the way) and one on localhost (another site). Neither publishes,
    and the analyst is still signed in afterwards."""
    a = run.a
    seen = {}
    attempts = [
        ("another-port", "127.0.0.1", "198.51.100.98"),
        ("another-site", "localhost", "198.51.100.99"),
    ]
    pages = {f"{label}.html": forged_publish(a, value) for label, _, value in attempts}
    node_host = urllib.parse.urlsplit(a["api"]).netloc
    with browser(run) as driver, elsewhere(pages) as port:
        sign_in(driver, a)
        for label, host, value in attempts:
            driver.get(f"http://{host}:{port}/{label}.html")
            WebDriverWait(driver, TIMEOUT).until(
                lambda d: urllib.parse.urlsplit(d.current_url).netloc == node_host,
                f"the page on {host}:{port} did not post its form to the node",
            )
            wait_loaded(driver)
            photograph_only(run, driver, f"cross-site-{label}")
            seen[label] = {
                "lands_on": path_of(driver),
                "published_shown": bool(driver.find_elements(By.CSS_SELECTOR, "#published")),
                "published": a["org"] in asserted_by(a, value),
            }
        go(driver, a, "/ui/publish")
        seen["still_signed_in"] = bool(driver.find_elements(By.CSS_SELECTOR, "#publish"))
        # A form kept for after sign-in (as for an expired session) must not be one that
        # another site posted: the analyst would be one click from publishing it.
        offered = read_publish(driver)["values"] if seen["still_signed_in"] else []
        seen["forged_values_offered"] = [v for _, _, v in attempts if v in offered]
    for label, _, _ in attempts:
        assert not seen[label]["published"], f"the form posted from {label} was published"
        assert not seen[label]["published_shown"], f"the form from {label} shows #published"
    assert seen["still_signed_in"], "the analyst was not signed in: the test proves nothing"
    assert not seen["forged_values_offered"], (
        f"the publish form offers what another site posted: {seen['forged_values_offered']}"
    )
    return seen


def keyboard_alone_reaches_every_page(run):
    """Signs in and visits every page with the keyboard alone: Tab to each nav link (it
    must show that it has the focus), Enter to follow it; Tab and Enter to sign out."""
    a = run.a
    seen = {"followed": []}
    with browser(run) as driver:
        go(driver, a, "/ui/signin")
        tab_to(driver, "token")
        ActionChains(driver).send_keys(a["token"]).send_keys(Keys.ENTER).perform()
        wait_for_path(driver, "/ui/overview", "Enter in the token field")
        for link, path in NAV:
            presses = tab_to(driver, link)
            focus = driver.execute_script(
                """
                const e = document.activeElement, s = getComputedStyle(e);
                return {outline: s.outlineStyle, width: parseFloat(s.outlineWidth) || 0,
                        shadow: s.boxShadow};
                """
            )
            outline = focus["outline"] != "none" and focus["width"] > 0
            shown = outline or focus["shadow"] != "none"
            assert shown, f"#{link} has the focus on {where(driver)} but shows no outline: {focus}"
            ActionChains(driver).send_keys(Keys.ENTER).perform()
            wait_for_path(driver, path, f"Enter on #{link}")
            seen["followed"].append({"link": link, "tabs": presses})
        tab_to(driver, "signout-submit")
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        wait_for_path(driver, "/ui/signin", "Enter on #signout-submit")
        seen["signed_out"] = True
    return seen


def tab_to(driver, element_id, most=100):
    """Presses Tab until #element_id has the focus; returns how many presses it took."""
    for presses in range(most + 1):
        focused = driver.execute_script("return (document.activeElement || {}).id")
        if focused == element_id:
            return presses
        ActionChains(driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"#{element_id} on {where(driver)} not reached in {most} presses of Tab")


def wait_for_path(driver, path, after):
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: path_of(d) == path
        and d.execute_script("return document.readyState") == "complete",
        f"{after} did not lead to {path} (at {driver.current_url})",
    )


def read_token_sees_everything_and_publishes_nothing(run):
    """A session opened with a read token (testnet.json's read_token) reads every page and
    is marked read-only; Publish answers 403, and a publish form posted with its session's
    own form token publishes nothing."""
    a = run.a
    assert a.get("read_token"), "testnet.json gives no read_token for A"
    value = "198.51.100.99"
    seen = {}
    with browser(run) as driver:
        sign_in(driver, a, token=a["read_token"])
        seen["lands_on"] = path_of(driver)
        for path in ("/ui/overview", "/ui/search", "/ui/recent", "/ui/activity"):
            go(driver, a, path)
            assert "read-only" in page_text(driver), f"{path} does not say the session is read-only"
        check_page(run, driver, "read-only-overview")
        go(driver, a, "/ui/publish")
        seen["publish_page"] = page_text(driver)
        photograph_only(run, driver, "read-only-publish")
        # A publish form posted with this session's form token, from the console's own page.
        go(driver, a, "/ui/search")
        driver.execute_script(
            """
            const form = document.createElement('form');
            form.method = 'post';
            form.action = '/ui/publish';
            for (const [name, value] of [['csrf', document.querySelector('[name=csrf]').value],
                                         ['values', arguments[0]], ['tlp', 'green']]) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = name; input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
            """,
            value,
        )
        wait_for_path(driver, "/ui/publish", "posting the publish form")
        seen["post_page"] = page_text(driver)
    seen["published"] = bool(asserted_by(a, value))
    assert seen["lands_on"] == "/ui/overview", f"a read token's sign-in led to {seen['lands_on']}"
    for page in ("publish_page", "post_page"):
        assert "read-only token" in seen[page], f"{page}: {seen[page][:300]!r}"
    assert not seen["published"], "a read-only session published"
    del seen["publish_page"], seen["post_page"]
    return seen


SCENARIOS = [
    sign_in_refuses_a_wrong_token,
    overview_and_activity_show_the_federation,
    search_shows_both_organisations,
    publish_form_reaches_the_other_node,
    stix_upload_is_dry_run_first,
    recent_filters_and_sealed_entries,
    published_markup_is_shown_as_text,
    expired_session_keeps_the_publish_form,
    cross_site_form_posts_are_refused,
    keyboard_alone_reaches_every_page,
    read_token_sees_everything_and_publishes_nothing,
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("testnet")
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--chromedriver", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--stix", required=True)
    parser.add_argument("--only", action="append", help="run only these scenarios")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    run = Run(args)
    report = {"scenarios": {}, "failures": {}}
    for scenario in SCENARIOS:
        if args.only and scenario.__name__ not in args.only:
            continue
        run.scenario = scenario.__name__
        log(f"scenario {run.scenario}")
        started = time.monotonic()
        try:
            report["scenarios"][run.scenario] = scenario(run)
        except Exception as error:
            report["failures"][run.scenario] = (
                f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}"
            )
            log(f"  FAILED: {error}")
        log(f"  {time.monotonic() - started:.1f} s")
    report["pages"] = run.pages
    report["page_problems"] = run.problems
    report["browser"] = run.browser_version
    print(json.dumps(report, indent=1))
    sys.exit(1 if report["failures"] or run.problems else 0)


if __name__ == "__main__":
    main()
