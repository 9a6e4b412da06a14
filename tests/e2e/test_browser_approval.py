"""A person approves prod in a real browser: a real `git push` to the local stack's remote, the
build and the dev rollout (simulated), the approval link taken from the Slack message, the
approval page opened and its Approve button clicked in headless chromium, and prod's ECS service
left running the release's task definition."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from deployer.releases.model import Release, ReleaseState
from deployer_local.demo import DONE, WAITING, approval_link, wait_for
from deployer_local.stack import LocalStack, StackOptions
from tests.support.events import REPOSITORY_ROOT

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

pytestmark = pytest.mark.e2e

SCREENSHOT = REPOSITORY_ROOT / "docs" / "approval-page.png"
UPDATE_SCREENSHOT_ENV = "UPDATE_SCREENSHOT"
DEVELOPER = {"user.name": "Ada Developer", "user.email": "ada@example.com"}
BOX_GLYPHS = ("■", "□")


@pytest.fixture
def stack_log() -> list[str]:
    """What the local stack printed (pytest shows it when a test fails)."""
    return []


@pytest.fixture
def local_stack(tmp_path: Path, build_dir: Path, stack_log: list[str]) -> Iterator[LocalStack]:
    """The whole deployer on this machine, stopped afterwards; the process environment (which
    the stack points at its moto server) is put back as it was. It runs a copy of the build, so a
    `make build` started meanwhile cannot pull the functions from under it."""
    build_copy = tmp_path / "build"
    shutil.copytree(build_dir, build_copy, symlinks=True)

    def printer(text: str) -> None:
        stack_log.append(text)
        print(text)

    saved = dict(os.environ)
    # The push hook reports the pusher from the git configuration: the same one on every machine.
    git_config = tmp_path / "gitconfig"
    git_config.write_text(f"[user]\n\tname = {DEVELOPER['user.name']}\n\temail = {DEVELOPER['user.email']}\n")
    os.environ.update({"GIT_CONFIG_GLOBAL": str(git_config), "GIT_CONFIG_NOSYSTEM": "1"})
    stack = LocalStack(StackOptions(root=tmp_path / "local", build_dir=build_copy, step_delay=0), printer=printer)
    try:
        yield stack.start()
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def push_a_commit(remote: Path, workdir: Path) -> str:
    """Commit a change in a clone of `remote` and `git push origin HEAD:main`; the commit id."""
    from deployer_local.gitremote import clone_and_seed

    clone = clone_and_seed(remote, workdir)

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    for key, value in DEVELOPER.items():
        git("config", key, value)
    (clone / "CHANGELOG.md").write_text("- Greet in French\n", encoding="utf-8")
    git("add", "CHANGELOG.md")
    git("commit", "-q", "-m", "Greet in French")
    git("push", "-q", "origin", "HEAD:main")
    return git("rev-parse", "HEAD")


def reach(stack: LocalStack, stack_log: list[str], states: set[ReleaseState]) -> Release:
    """demo.wait_for, failing with the functions' errors rather than only a timeout."""
    try:
        return wait_for(stack, states, timeout=60)
    except TimeoutError as timeout:
        errors = [line for line in stack_log if "ERROR" in line] or stack_log[-5:]
        pytest.fail(f"{timeout}; the stack said:\n" + "\n".join(errors), pytrace=False)


def posted_approval_link(stack: LocalStack, timeout: float = 15) -> str:
    """demo.approval_link once Slack has it: the message is posted just after the state is written."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return approval_link(stack)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def save_full_page_screenshot(browser: Chrome, path: Path) -> None:
    """The whole page, buttons included: the window grows to the page's height."""
    page_height, chrome_height = browser.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    browser.set_window_size(1280, int(page_height) + int(chrome_height))
    assert browser.save_screenshot(str(path)), f"chromium saved no screenshot to {path}"


def test_an_approver_approves_prod_in_the_browser_and_prod_runs_the_release(
    browser: Chrome, local_stack: LocalStack, stack_log: list[str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # GIVEN a pushed commit built and deployed to dev, waiting for prod's approval
    assert local_stack.remote is not None
    commit = push_a_commit(local_stack.remote, tmp_path / "work")
    waiting = reach(local_stack, stack_log, WAITING | DONE)
    assert (waiting.state, waiting.commit) == (ReleaseState.AWAITING_APPROVAL, commit), waiting.reason
    link = posted_approval_link(local_stack)
    assert link.startswith(f"{local_stack.approval_url}approvals/")

    # WHEN the approver opens the link from Slack
    browser.get(link)

    # THEN the page shows the commit and the prod rollout drawn as `deployer plan` draws it
    assert browser.find_element(By.TAG_NAME, "h1").text == "Deploy web to prod?"
    assert commit[:12] in browser.find_element(By.CSS_SELECTOR, "p.sub").text
    drawings = [pre.text for pre in browser.find_elements(By.TAG_NAME, "pre")]
    assert any(all(glyph in d for glyph in BOX_GLYPHS) and "wave" in d for d in drawings), drawings
    screenshot = tmp_path / "approval-page.png"
    save_full_page_screenshot(browser, screenshot)
    assert screenshot.read_bytes().startswith(b"\x89PNG"), "the screenshot is not a PNG"
    if os.environ.get(UPDATE_SCREENSHOT_ENV) == "1":
        shutil.copyfile(screenshot, SCREENSHOT)

    # WHEN the approver clicks Approve
    browser.find_element(By.CSS_SELECTOR, 'button[name="decision"][value="approve"]').click()

    # THEN the outcome page says so, the release reaches RELEASED and prod runs its task definition
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "h1").text.startswith("Approved"))
    assert "this link cannot be used again" in browser.page_source.lower()
    released = reach(local_stack, stack_log, DONE)
    assert released.state is ReleaseState.RELEASED, released.reason
    assert released.release_id == waiting.release_id
    stored = local_stack.store.get(released.release_id)
    assert stored is not None
    task_definition = stored.stages["prod"].task_definition_arn
    assert task_definition
    prod = local_stack.account.services["prod"]
    ecs = boto3.client("ecs", endpoint_url=local_stack.endpoint_url, region_name="eu-west-1")
    (service,) = ecs.describe_services(cluster=prod.cluster, services=[prod.service])["services"]
    assert service["taskDefinition"] == task_definition
