"""The console shows an attempt's log, read through the pod log API with the user's credentials, from
a real container on the real node (kwok's simulated pods have no logs)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.barge_objects import Barge, batch_job
from tests.e2e.realnode.test_real_containers import real, script_definition  # noqa: F401 - fixture
from tests.e2e.test_console import Console, browser, console, page, shot  # noqa: F401 - fixtures


def test_an_attempts_log_opens_on_the_job_page(real: tuple[Barge, str, str], console: Console,  # noqa: F811
                                               page: Page) -> None:  # noqa: F811
    barge, _ce, jq = real
    barge.apply(script_definition("talk", 'echo "hello from attempt $AWS_BATCH_JOB_ATTEMPT of Ref::who"',
                                  parameters={"who": "nobody"}),
                batch_job("talk", "talk", jq, parameters={"who": "the console"}))
    status = barge.wait_state("talk", "SUCCEEDED", "FAILED", timeout=120)
    assert status["state"] == "SUCCEEDED", status
    pod = status["attempts"][0]["podName"]

    page.goto(f"{console.url}/jobs/{barge.namespace}/talk")
    page.locator("#attempts").get_by_role("link", name=pod).click()
    expect(page.locator("#log-title")).to_have_text(f"Log of {pod}")
    expect(page.locator("#log")).to_have_text("hello from attempt 1 of the console\n")
    shot(page, "job-log")
