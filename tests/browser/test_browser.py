"""The dashboard in headless chromium: what a person does, screenshots, accessibility.

One browser for the session (``conftest.chromium``); each test its own context. Waits
are Playwright's auto-waiting on visible state, never sleeps.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from tests.browser.conftest import Site, check_accessibility, screenshot, sign_in

LIVE = 10_000
"""Milliseconds a live change may take to show (SSE, then a reload of the page)."""


def test_sign_in_find_an_execution_by_id_and_read_its_page(chromium: Any, site: Site) -> None:
    done = site.start("three")
    failed = site.start("gated")
    page = sign_in(chromium, site, "acme")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    expect(page.locator(".counts")).to_contain_text("failed")
    check_accessibility(page)
    screenshot(page, "executions")
    # htmx refreshes the first page every 5 s (under the CSP: no eval, no inline script).
    with page.expect_response(lambda r: "/ui/executions-rows" in r.url, timeout=LIVE) as got:
        pass
    assert got.value.status == 200
    page.get_by_label("Execution or correlation id").fill(done)
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(f"**/ui/executions/{done}")
    expect(page.locator("#status")).to_have_text("completed")
    expect(page.locator("#graph svg")).to_be_visible()  # Mermaid drew the graph
    check_accessibility(page)
    page.goto(f"{site.url}/ui/executions/{failed}")
    expect(page.locator("#graph svg")).to_be_visible()
    screenshot(page, "execution", full_page=True)
    page.goto(f"{site.url}/ui/executions/not-there")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    check_accessibility(page)
    assert page.csp_errors == []
    page.context.close()


def test_waiting_execution_completes_live_after_a_resume_elsewhere(
    chromium: Any, site: Site
) -> None:
    execution_id = site.start("approval")
    page = sign_in(chromium, site, "acme", f"/ui/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("waiting")
    with site.api("acme") as other:
        answer = other.post(f"/api/v1/executions/{execution_id}/resume", json={"data": {"ok": 1}})
        assert answer.status_code == 200, answer.text
    expect(page.locator("#status")).to_have_text("completed", timeout=LIVE)
    expect(page.locator("#events")).to_contain_text("execution.completed")
    assert page.csp_errors == []
    page.context.close()


def test_retry_a_failed_execution_from_its_page(chromium: Any, site: Site) -> None:
    execution_id = site.start("gated")
    page = sign_in(chromium, site, "acme", f"/ui/executions/{execution_id}")
    expect(page.locator(".summary")).to_contain_text("(run 1)")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry from the failed step").click()
    page.wait_for_url(re.compile(r"done=retried"))
    # The gate is still closed: the retried run fails again, as run 2.
    expect(page.locator(".summary")).to_contain_text("(run 2)", timeout=LIVE)
    page.context.close()


def test_cancel_asks_for_confirmation(chromium: Any, site: Site) -> None:
    execution_id = site.start("approval")
    page = sign_in(chromium, site, "acme", f"/ui/executions/{execution_id}")
    check_accessibility(page)
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel execution").click()
    expect(page.locator("#status")).to_have_text("waiting")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel execution").click()
    page.wait_for_url(re.compile(r"done=cancelled"))
    expect(page.locator("#status")).to_have_text("cancelled")
    page.context.close()


def test_resume_with_malformed_json_keeps_the_text(chromium: Any, site: Site) -> None:
    execution_id = site.start("approval")
    page = sign_in(chromium, site, "acme", f"/ui/executions/{execution_id}")
    typed = '{"ok": tru'
    page.get_by_label("Resume with data (JSON)").fill(typed)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.locator("#resume-error")).to_contain_text("not valid JSON")
    expect(page.get_by_label("Resume with data (JSON)")).to_have_value(typed)
    screenshot(page, "resume-error")
    page.context.close()


def test_complete_a_user_task_after_a_validation_error(chromium: Any, site: Site) -> None:
    execution_id = site.start("review")
    page = sign_in(chromium, site, "acme", "/ui/inbox")
    check_accessibility(page)
    screenshot(page, "inbox")
    page.locator(f"tr:has(a[href='/ui/executions/{execution_id}'])").get_by_role(
        "link", name="Check the order"
    ).click()
    page.get_by_label("Comment").fill("no")
    page.get_by_role("button", name="Complete task").click()
    expect(page.get_by_role("alert")).to_contain_text("comment")
    check_accessibility(page)
    screenshot(page, "task")
    page.get_by_label("Comment").fill("looks right")
    page.get_by_label("Approved").check()
    page.get_by_role("button", name="Complete task").click()
    page.wait_for_url(f"**/ui/executions/{execution_id}?done=completed")
    expect(page.locator("#status")).to_have_text("completed", timeout=LIVE)
    page.context.close()


def test_read_only_key_sees_no_actions(chromium: Any, site: Site) -> None:
    execution_id = site.start("approval")
    page = sign_in(chromium, site, "reader", f"/ui/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("waiting")
    expect(page.get_by_role("button", name="Cancel execution")).to_have_count(0)
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    page.context.close()


def test_flows_tables_sign_in_and_phone_width(chromium: Any, site: Site) -> None:
    with site.api("admin") as admin:
        schema = {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        }
        admin.post("/api/v1/tables", json={"name": "stock", "schema": schema})
    with site.api("acme") as acme:
        acme.post("/api/v1/tables/stock/rows", json={"data": {"sku": "A-1", "qty": 3}})
        made = acme.post(
            "/api/v1/schedules", json={"id": "nightly", "flow_id": "three", "cron": "0 2 * * *"}
        )
        assert made.status_code == 201, made.text
    page = sign_in(chromium, site, "acme", "/ui/flows")
    check_accessibility(page)
    page.get_by_role("link", name="approval", exact=True).click()
    expect(page.locator("#graph svg")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "flow")
    page.goto(f"{site.url}/ui/tables/stock")
    expect(page.get_by_role("cell", name="A-1")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "table")
    page.goto(f"{site.url}/ui/schedules/nightly")
    expect(page.get_by_role("button", name="Run now")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "schedule")
    for screen in ("schedules", "triggers", "forms"):
        page.goto(f"{site.url}/ui/{screen}")
        check_accessibility(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{site.url}/ui/executions")
    check_accessibility(page)
    screenshot(page, "executions-phone")
    page.context.close()
    fresh = chromium.new_context(viewport={"width": 1000, "height": 640}).new_page()
    fresh.goto(f"{site.url}/ui/login")
    check_accessibility(fresh)
    screenshot(fresh, "sign-in")
    fresh.context.close()


def test_pages_read_without_javascript(chromium: Any, site: Site) -> None:
    execution_id = site.start("gated")
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.url}/ui/executions/{execution_id}")
    page.get_by_label("API key").fill(site.keys["acme"])
    page.get_by_role("button", name="Sign in").click()  # a plain form post
    page.wait_for_url(f"**/ui/executions/{execution_id}")
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("#graph")).to_contain_text("flowchart TD")  # the Mermaid text
    expect(page.locator("#events")).to_contain_text("execution.failed")
    expect(page.locator("ol.gantt svg")).to_have_count(1)
    page.goto(f"{site.url}/ui/executions")
    expect(page.get_by_role("link", name=execution_id)).to_be_visible()
    context.close()
