"""The web page in a real browser (Debian's chromium driven by Playwright).

Run by web/backend's TestBrowser, which starts the servers, seeds the store
and passes a JSON spec as argv[1]:

  base       the page without authentication (loopback bind)
  auth_base  the page with authentication (bound to 0.0.0.0)
  user, password
  alice_id   the person to rename and take a sample from
  unknown_id the unknown face to enroll as "Carol"
  chromium   the browser executable
  shots      the screenshot directory
  profile    a fresh user-data directory

It prints "need-event" when the events page is open and waits for the Go
test to push a recognition of Alicia; it prints "ok" at the end. Any failed
expectation raises (exit status 1) with Playwright's message.
"""
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

spec = json.load(open(sys.argv[1]))
SHOTS = spec["shots"]
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def step(msg):
    print("step:", msg, flush=True)


def shoot(page, name):
    """Screenshots of the page as shown now, at phone and desktop widths."""
    for label, size in WIDTHS.items():
        page.set_viewport_size(size)
        page.wait_for_timeout(150)  # the layout settles
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDTHS["desktop"])


def loaded(img):
    """An <img> that really loaded (not a broken picture)."""
    expect(img).to_be_visible()
    img.evaluate("i => i.complete || new Promise(r => { i.onload = r; i.onerror = r; })")
    w = img.evaluate("i => i.naturalWidth")
    assert w > 0, f"image {img} did not load"


with sync_playwright() as p:
    # launch_persistent_context: a fresh --user-data-dir (Playwright refuses
    # the flag in plain launch()).
    ctx = p.chromium.launch_persistent_context(
        spec["profile"], executable_path=spec["chromium"], args=ARGS, headless=True,
        viewport=WIDTHS["desktop"])
    ctx.set_default_timeout(15000)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.on("dialog", lambda d: d.accept())  # the confirm() before a removal
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A missing picture is a 404 the page handles (it says why): the only
    # 404s allowed are of pictures of faces that are gone (an unknown
    # face's event after it was enrolled). Other failed requests are errors.
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource") and errors.append(m.text))
    page.on("response", lambda r: r.status >= 400 and not (r.status == 404 and r.url.endswith("/thumb"))
            and r.status != 401 and errors.append(f"{r.status} {r.url}"))
    base = spec["base"]

    step("start page: people and unknown faces together")
    page.goto(base + "/")
    unknown = page.locator(f'[data-unknown="{spec["unknown_id"]}"]')
    expect(unknown).to_be_visible()
    expect(page.locator("#people")).to_contain_text("Alice")
    loaded(unknown.locator("img").first)
    loaded(page.locator(f'[data-person="{spec["alice_id"]}"] img'))
    shoot(page, "1-faces")

    step("enroll the unknown face as Carol")
    unknown.get_by_label("Name").fill("Carol")
    unknown.get_by_role("button", name="Enroll").click()
    expect(page.locator("#msg")).to_contain_text("Enrolled Carol")
    expect(page.locator("#people")).to_contain_text("Carol")
    expect(unknown).to_have_count(0)
    shoot(page, "2-faces-after-enroll")

    step("rename Alice to Alicia")
    page.locator(f'[data-person="{spec["alice_id"]}"] h3 a').click()
    expect(page.locator("h1")).to_have_text("Alice")
    page.get_by_label("New name").fill("Alicia")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("h1")).to_have_text("Alicia")

    step("delete one of her samples")
    samples = page.locator("[data-sample]")
    expect(samples).to_have_count(2)
    loaded(samples.first.locator("img"))
    samples.first.get_by_role("button", name="Remove").click()
    expect(page.locator("#msg")).to_contain_text("Sample removed")
    expect(samples).to_have_count(1)
    shoot(page, "3-person")

    step("see a live event arrive")
    page.get_by_role("link", name="Events").click()
    expect(page.locator("#live")).to_have_class("dot on")
    print("need-event", flush=True)
    ev = page.locator('[data-type="recognized"]').filter(has_text="Alicia")
    expect(ev).to_contain_text("recognized on door")
    loaded(ev.locator("img"))
    shoot(page, "4-events")

    step("cameras: state and the latest frame on request")
    page.get_by_role("link", name="Cameras").click()
    door = page.locator('[data-camera="door"]')
    expect(page.locator('[data-camera="yard"]')).to_contain_text("stream ended")
    door.get_by_role("button", name="Show latest frame").click()
    loaded(door.locator("img.frame"))
    shoot(page, "5-cameras")

    step("model: head versions, activate")
    page.get_by_role("link", name="Model").click()
    expect(page.locator("h1")).to_have_text("Model")
    expect(page.locator("[data-head]")).to_have_count(spec["heads"])
    shoot(page, "6-model")

    assert not errors, f"errors in the page: {errors}"

    step("log in with auth on the non-loopback bind")
    auth = ctx.new_page()
    auth.on("pageerror", lambda e: errors.append(str(e)))
    auth.goto(spec["auth_base"] + "/")
    expect(auth.get_by_role("heading", name="Log in to edged")).to_be_visible()
    expect(auth.locator("#people")).to_have_count(0)
    auth.get_by_label("User").fill(spec["user"])
    auth.get_by_label("Password").fill("not the password")
    auth.get_by_role("button", name="Log in").click()
    expect(auth.locator("#msg")).to_contain_text("wrong user name or password")
    shoot(auth, "7-login")
    auth.get_by_label("Password").fill(spec["password"])
    auth.get_by_role("button", name="Log in").click()
    expect(auth.locator("#people")).to_contain_text("Carol")
    expect(auth.get_by_role("button", name="Log out")).to_be_visible()
    shoot(auth, "8-faces-logged-in")
    assert not errors, f"errors in the page: {errors}"

    ctx.close()
print("ok", flush=True)
