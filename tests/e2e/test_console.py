"""The web console in a real headless Chromium (Debian's package, driven by Playwright): submit an array
through the form and watch it finish without reloading, a waiting job's reason and place, cancel, a
DAG's edges, a refused environment variable, and a bearer-token login that RBAC limits.

Screenshots of every page go to $BARGE_E2E_OUTPUT/console (default .test-output/console)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import ROOT
from tests.e2e.kube import Cluster, eventually

OUTPUT = Path(os.environ.get("BARGE_E2E_OUTPUT", ROOT / ".test-output")) / "console"
WAIT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    def __init__(self, cluster: Cluster, *flags: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = OUTPUT / f"console-{self.port}.log"
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "barge.cli.main", "console", "--port",
                                             str(self.port), *flags], env=env, stdout=log, stderr=subprocess.STDOUT)
        eventually(self._up, 60, message=f"the console on {self.url} (log: {self.log})")

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            assert self.process.poll() is None, f"the console exited: {self.log.read_text()}"
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def console(operator: Cluster) -> Iterator[Console]:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    server = Console(operator)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for the console's browser tests: scripts/setup installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def setup_queue(barge: Barge, max_vcpus: int = 2) -> str:
    name = barge.name("q")
    barge.apply(compute_environment(name, max_vcpus), job_queue(name, [name]),
                job_definition("quick", cpu="1", delay="1s"), job_definition("hold", cpu="1", delay="120s"))
    return name


def submit_form(page: Page, console: Console, barge: Barge, **fields: Any) -> None:
    page.goto(f"{console.url}/submit?namespace={barge.namespace}")
    page.get_by_label("Job name").fill(fields["name"])
    page.get_by_label("Job definition").fill(fields["definition"])
    page.get_by_label("Job queue").select_option(fields["queue"])
    if "size" in fields:
        page.get_by_label("Array size").fill(str(fields["size"]))
    if fields.get("sequential"):
        page.get_by_label("Run children sequentially").check()
    if "parameters" in fields:
        page.get_by_label("Parameters").fill(fields["parameters"])
    if "env" in fields:
        page.get_by_label("Environment variables").fill(fields["env"])


def test_submit_an_array_that_runs_sequentially_and_watch_it_succeed_live(
        console: Console, page: Page, barge: Barge) -> None:
    queue = setup_queue(barge)
    submit_form(page, console, barge, name="frames", definition="quick", queue=queue, size=3, sequential=True,
                parameters="frame=7", env="MODE=fast")
    shot(page, "submit")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url(f"**/jobs/{barge.namespace}/frames")
    page.evaluate("window.__notReloaded = true")

    job = barge.job("frames")
    assert job["spec"]["arrayProperties"] == {"size": 3}
    assert job["spec"]["dependsOn"] == [{"type": "SEQUENTIAL", "condition": "Succeeded"}]
    assert job["spec"]["parameters"] == {"frame": "7"}
    assert job["spec"]["overrides"]["env"] == [{"name": "MODE", "value": "fast"}]

    expect(page.locator("#job-state")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded: the update was not live"
    expect(page.locator(".children .cell.SUCCEEDED")).to_have_count(3)
    expect(page.locator('.range[data-state="SUCCEEDED"]')).to_have_text("0-2")
    children = barge.status("frames")["arrayProperties"]
    assert children["succeededIndices"] == "0-2"
    shot(page, "job-array")

    page.goto(f"{console.url}/jobs?namespace={barge.namespace}")
    expect(page.locator('tr[data-job="frames"] .state')).to_have_text("SUCCEEDED")
    shot(page, "jobs")
    page.goto(console.url)
    expect(page.locator(f'tr[data-queue="{queue}"]')).to_be_visible()
    expect(page.locator(f'[data-environment="{queue}"] .bar-label')).to_contain_text("/ 2 vCPU used")
    shot(page, "overview")


def test_a_waiting_job_shows_its_reason_and_position_and_can_be_cancelled(
        console: Console, page: Page, barge: Barge) -> None:
    queue = setup_queue(barge, max_vcpus=1)
    barge.apply(batch_job("blocker", "hold", queue))
    barge.wait_state("blocker", "RUNNING", "STARTING")
    barge.apply(batch_job("first", "quick", queue))
    barge.wait_state("first", "RUNNABLE")
    barge.apply(batch_job("second", "quick", queue))
    barge.wait_state("second", "RUNNABLE")

    page.goto(f"{console.url}/jobs/{barge.namespace}/second")
    expect(page.locator("#status-reason")).to_contain_text("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", timeout=30_000)
    expect(page.locator("#queue-position")).to_have_text(f"2 of 2 RUNNABLE in queue {queue}")
    expect(page.locator("#waits-for")).to_have_text("capacity now in use by other jobs to be freed")
    shot(page, "job-waiting")

    page.get_by_label("Cancel reason").fill("not needed any more")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-state")).to_have_text("FAILED", timeout=WAIT_MS)
    status = barge.status("second")
    assert status["isCancelled"] is True
    assert barge.job("second")["spec"]["cancel"] == {"reason": "not needed any more"}
    shot(page, "job-cancelled")

    page.goto(f"{console.url}/jobs/{barge.namespace}/blocker")
    page.get_by_label("Terminate reason").fill("done testing")
    page.get_by_role("button", name="Terminate job").click()
    expect(page.locator("#job-state")).to_have_text("FAILED", timeout=WAIT_MS)
    assert barge.status("blocker")["isTerminated"] is True


def test_a_dag_is_drawn_with_its_edges(console: Console, page: Page, barge: Barge) -> None:
    queue = setup_queue(barge)
    barge.apply(batch_job("fetch", "quick", queue),
                batch_job("left", "quick", queue, dependsOn=[{"jobName": "fetch"}]),
                batch_job("right", "quick", queue, dependsOn=[{"jobName": "fetch"}]),
                batch_job("merge", "quick", queue, dependsOn=[{"jobName": "left"}, {"jobName": "right"}]))
    page.goto(f"{console.url}/jobs/{barge.namespace}/merge")
    edges = page.locator("#dag g.edge")
    expect(edges).to_have_count(4)
    drawn = sorted((e.get_attribute("data-source"), e.get_attribute("data-target")) for e in edges.all())
    assert drawn == [("fetch", "left"), ("fetch", "right"), ("left", "merge"), ("right", "merge")]
    expect(page.locator('#dag [data-node="merge"]')).to_have_class("node SUCCEEDED current", timeout=WAIT_MS)
    shot(page, "job-dag")


def test_a_reserved_environment_variable_is_refused_next_to_the_field(
        console: Console, page: Page, barge: Barge) -> None:
    queue = setup_queue(barge)
    submit_form(page, console, barge, name="sneaky", definition="quick", queue=queue,
                env="MODE=fast\nAWS_BATCH_JOB_ID=forged")
    error = page.locator("#environment-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("AWS_BATCH_JOB_ID")
    expect(error).to_contain_text("reserved")
    page.get_by_role("button", name="Submit job").click()
    expect(page.get_by_label("Environment variables")).to_be_focused()
    assert page.url.endswith(f"/submit?namespace={barge.namespace}"), "the form was submitted"
    shot(page, "submit-refused")
    assert [j["metadata"]["name"] for j in barge.cluster.batchjobs(barge.namespace)] == []

    page.get_by_label("Environment variables").fill("MODE=fast")
    expect(error).to_be_hidden()
    page.get_by_label("Job definition").fill("no-such-definition")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#job-definition-error")).to_contain_text(
        f"no job definition 'no-such-definition' in namespace '{barge.namespace}'")
    expect(page.get_by_label("Environment variables")).to_have_value("MODE=fast")
    assert barge.cluster.batchjobs(barge.namespace) == []


def test_a_bearer_token_login_acts_with_that_users_rights(operator: Cluster, browser: Browser,
                                                           barge: Barge) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    queue = setup_queue(barge)
    barge.apply(batch_job("mine", "hold", queue))
    ns = barge.namespace
    operator.kubectl("-n", ns, "create", "serviceaccount", "viewer")
    operator.kubectl("-n", ns, "create", "role", "barge-viewer", "--verb=get,list,watch",
                     "--resource=batchjobs.barge.dev")
    operator.kubectl("-n", ns, "create", "rolebinding", "barge-viewer", "--role=barge-viewer",
                     f"--serviceaccount={ns}:viewer")
    token = operator.kubectl("-n", ns, "create", "token", "viewer").stdout.strip()
    server = Console(operator, "--login")
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"{server.url}/jobs")
        page.wait_for_url("**/login")
        page.get_by_label("Bearer token").fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("did not accept")
        shot(page, "login")
        page.get_by_label("Bearer token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/")
        expect(page.locator("main")).to_contain_text("You may not list job queues")
        page.goto(f"{server.url}/jobs")
        expect(page.get_by_role("alert")).to_contain_text("You may not list BatchJobs in every namespace")
        page.goto(f"{server.url}/jobs?namespace={ns}")
        expect(page.locator('tr[data-job="mine"]')).to_be_visible()
        page.goto(f"{server.url}/jobs/{ns}/mine")
        page.get_by_label("Cancel reason").fill("viewer tries")
        page.get_by_role("button", name="Cancel job").click()
        expect(page.get_by_role("alert")).to_contain_text("forbidden", timeout=20_000)
        assert "cancel" not in barge.job("mine")["spec"]
        shot(page, "login-viewer")
    finally:
        context.close()
        server.stop()
    assert not any(token in url for url in requests), "the token appeared in a URL"
    assert token not in server.log.read_text(), "the token appeared in the console's log"
