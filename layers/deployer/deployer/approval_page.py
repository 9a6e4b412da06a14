"""The approval page and the pages around it, as plain HTML: no JavaScript, one inline style.

Every value that reaches the HTML goes through `_e` (`html.escape(..., quote=True)`): commit
ids, branch names, pushers, reasons, stage and pipeline names all come from outside and may hold
markup. The only unescaped strings are this module's own literals.

The form has no `action`: it posts to the page's own URL, so the token (the link's capability)
never appears in the response body. The security headers that go with these pages are
`SECURITY_HEADERS`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from deployer.settings import SettingChange, by_container, clip

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CONTENT_TYPE",
    "SECURITY_HEADERS",
    "ApprovalPage",
    "approval_page",
    "message_page",
    "outcome_page",
]

CONTENT_TYPE: Final = "text/html; charset=utf-8"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # Link previewers and proxies must not keep a page reached through a bearer link.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_STYLE: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.25rem}
.sub{color:#555;margin-top:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f5f5f7;padding:1rem;overflow-x:auto;font-size:.85rem;line-height:1.3}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem 1rem}
.actions{display:flex;gap:1rem;margin:1.5rem 0}
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:.4rem;border:1px solid #888;cursor:pointer}
button.approve{background:#1a7f37;color:#fff;border-color:#1a7f37}
button.reject{background:#fff;color:#b42318;border-color:#b42318}
footer{color:#666;font-size:.85rem;margin-top:2rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n"
        f"<style>{_STYLE}</style>\n"
        "</head>\n<body>\n"
        f"{body}\n"
        "<footer>ecs-deployer</footer>\n"
        "</body>\n</html>\n"
    )


@dataclass(frozen=True, kw_only=True)
class ApprovalPage:
    """What the approval page shows; built from the approval and its release by `approval_http`."""

    pipeline: str
    stage: str
    release_id: str
    commit: str
    branch: str | None
    pusher: str | None
    image_uri: str | None
    image_digest: str | None
    service: str | None
    current_task_definition: str | None
    status: str | None  # the release's reason line ("waiting for approval of prod until ...")
    plan_text: str | None  # the drawing of `deployer plan`, or None with `plan_note` saying why
    plan_note: str | None
    expires_at: datetime
    expires_in: str  # "23 h 59 min"
    approvers: Sequence[str]
    link_may_decide: bool  # approvals.may_decide(approval, None): the link is the capability
    paused_at: str | None = None  # ECS paused the deployment at this lifecycle stage (approval `at:`)
    timeout_action: str | None = None  # what ECS does if nobody decides in time
    # the stage's environment variables and secrets (`flow.settings_context`): "changes" (each
    # `SettingChange.to_dict`, secrets by reference), "role_note" (what reads the secrets), or "note"
    # (why nothing can be shown)
    settings: Mapping[str, Any] | None = None


def _row(term: str, value: str | None) -> str:
    return f"<dt>{_e(term)}</dt><dd>{value}</dd>" if value else ""


def _change(page: ApprovalPage) -> str:
    image = f"<code>{_e(page.image_uri)}</code>" if page.image_uri else "the built image"
    if page.current_task_definition:
        current = page.current_task_definition.rsplit("task-definition/", 1)[-1]
        change = (
            f"task definition <code>{_e(current)}</code> → a new revision of the same family "
            f"with the image {image}; everything else in the task definition is kept"
        )
    elif page.service and ", " in page.service:
        change = (
            f"a new revision of each service's task definition with the image {image} (services that run "
            "the same revision share the new one)"
        )
    else:
        change = f"a new revision of the service's task definition with the image {image}"
    noun = "ECS services" if page.service and ", " in page.service else "ECS service"
    where = f"{noun} <code>{_e(page.service)}</code>" if page.service else "The ECS service"
    return f"<p>{where}: {change}. The desired count is not touched.</p>" + _settings(page)


_CHANGE_WORDS: Final = {"added": "added", "removed": "removed", "changed": "changed"}


def _settings_side(side: tuple[str, str] | None) -> str:
    if side is None:
        return "<i>not set</i>"
    kind, value = side
    if kind == "secret":  # a reference (ARN or parameter name): ECS resolves it when a task starts
        return f"secret from <code>{_e(value)}</code>"
    return f"<code>{_e(clip(value))}</code>"


def _settings(page: ApprovalPage) -> str:
    """The environment variables and secrets the stage sets: names, plain values (clipped), and for
    secrets only the reference ECS resolves when a task starts."""
    settings = page.settings if isinstance(page.settings, Mapping) else {}
    if settings.get("note"):
        return f'<p class="note">Environment and secrets: {_e(settings["note"])}</p>'
    revisions = settings.get("revisions")
    if isinstance(revisions, list):  # a stage of several services: each task definition they run
        parts = [
            _settings_list(
                revision.get("changes") or (),
                revision.get("role_note"),
                f"the new revision of <code>{_e(str(revision.get('revision', '?')))}</code> (ECS "
                f"service{'s' if len(revision.get('services') or ()) > 1 else ''} "
                f"<code>{_e(', '.join(str(n) for n in revision.get('services') or ()))}</code>)",
            )
            for revision in revisions
            if isinstance(revision, Mapping)
        ]
        return "".join(parts)
    return _settings_list(settings.get("changes") or (), settings.get("role_note"), "the new revision")


def _settings_list(items: Any, role_note: Any, what: str) -> str:
    """One list of changes: `what` (already HTML) names the revision they are in."""
    changes = [SettingChange.from_dict(item) for item in items if isinstance(item, Mapping)]
    if not changes:
        return ""
    rows = []
    for container, grouped in by_container(changes):
        for change in grouped:
            rows.append(
                f"<li><code>{_e(container)}</code> {_e(_CHANGE_WORDS[change.change])} <code>{_e(change.name)}</code>: "
                f"{_settings_side(change.before)} → {_settings_side(change.after)}</li>"
            )
    role = f'\n<p class="note">{_e(str(role_note))}.</p>' if role_note else ""
    return (
        f"<p>Environment variables and secrets of {what} (a secret shows its reference; its value is "
        "read by ECS when a task starts, never by the deployer):</p>\n<ul>" + "".join(rows) + "</ul>" + role
    )


def _plan(page: ApprovalPage) -> str:
    parts = ["<h2>Rollout</h2>"]
    if page.plan_text:
        parts.append(f"<pre>{_e(page.plan_text.rstrip())}</pre>")
    if page.plan_note:
        parts.append(f'<p class="note">{_e(page.plan_note)}</p>')
    return "\n".join(parts)


def _decision(page: ApprovalPage) -> str:
    if not page.link_may_decide:
        listed = ", ".join(f"<code>{_e(a)}</code>" for a in page.approvers)
        return (
            "<h2>Decision</h2>\n"
            f"<p>Only this stage's approvers may decide: {listed}. They decide with the <b>Approve</b> "
            "and <b>Reject</b> buttons of the Slack message, which prove who clicked; this link alone "
            "does not.</p>"
        )
    expected = (
        "Expected approvers: " + ", ".join(f"<code>{_e(a)}</code>" for a in page.approvers) + ". "
        if page.approvers
        else ""
    )
    # No action attribute: the form posts to this very URL, so the token is not repeated here.
    return (
        "<h2>Decision</h2>\n"
        f"<p>{expected}This signed link decides once; the first decision counts, and it is recorded "
        "with your address and browser.</p>\n"
        '<form method="post">\n'
        '<div class="actions">\n'
        f'<button type="submit" name="decision" value="approve" class="approve">Approve: deploy to {_e(page.stage)}'
        "</button>\n"
        '<button type="submit" name="decision" value="reject" class="reject">Reject</button>\n'
        "</div>\n"
        "</form>"
    )


def approval_page(page: ApprovalPage) -> str:
    """The page a GET of an approval link shows. It changes nothing; only its form decides."""
    commit = f"<code>{_e(page.commit[:12])}</code> (<code>{_e(page.commit)}</code>)" + (
        f" on <code>{_e(page.branch)}</code>" if page.branch else ""
    )
    image = None
    if page.image_uri or page.image_digest:
        shown = [f"<code>{_e(page.image_uri)}</code>" if page.image_uri else ""]
        if page.image_digest and (not page.image_uri or page.image_digest not in page.image_uri):
            shown.append(f"digest <code>{_e(page.image_digest)}</code>")
        image = "<br>".join(s for s in shown if s)
    who = (
        ", ".join(f"<code>{_e(a)}</code>" for a in page.approvers) + " (Slack buttons), or this link's holder"
        if page.approvers
        else "anyone holding this link"
    )
    details = "".join(
        [
            _row("Pipeline", _e(page.pipeline)),
            _row("Stage", _e(page.stage)),
            _row("Commit", commit),
            _row("Pushed by", _e(page.pusher) if page.pusher else None),
            _row("Image", image),
            _row("Release", f"<code>{_e(page.release_id)}</code>"),
            _row("Status", _e(page.status) if page.status else None),
            _row("Expires", f"{_e(_when(page.expires_at))} (in {_e(page.expires_in)})"),
            _row("Who may approve", who),
        ]
    )
    if page.paused_at:
        title = f"Continue the deployment of {page.pipeline} to {page.stage}?"
        sub = (
            f"ECS paused the deployment of commit <code>{_e(page.commit[:12])}</code> at "
            f"<code>{_e(page.paused_at)}</code>: Approve continues it (ContinueServiceDeployment CONTINUE), "
            f"Reject rolls it back; with no decision ECS applies {_e(page.timeout_action or 'ROLLBACK')} "
            "when the pause times out."
        )
    else:
        title = f"Deploy {page.pipeline} to {page.stage}?"
        sub = f"Commit <code>{_e(page.commit[:12])}</code> is waiting for approval."
    body = "\n".join(
        [
            f"<h1>{_e(title)}</h1>",
            f'<p class="sub">{sub}</p>',
            f"<dl>{details}</dl>",
            "<h2>What changes</h2>",
            _change(page),
            _plan(page),
            _decision(page),
        ]
    )
    return _document(f"Approve {page.pipeline} → {page.stage}", body)


def outcome_page(
    *, pipeline: str, stage: str, commit: str, decision: str, decided_at: datetime, paused_at: str | None = None
) -> str:
    """After a decision: what happens next."""
    if paused_at and decision == "approve":
        headline = f"Approved: ECS continues the deployment of {stage} of {pipeline}"
        follow = f"Commit {commit[:12]} goes on from {paused_at} to production traffic. Progress is posted in Slack."
    elif paused_at:
        headline = f"Rejected: ECS rolls {stage} of {pipeline} back"
        follow = f"The deployment of commit {commit[:12]} paused at {paused_at} is rolled back; the release ends here."
    elif decision == "approve":
        headline = f"Approved: {stage} of {pipeline} will deploy now"
        follow = f"Commit {commit[:12]} is being deployed to {stage}. Progress is posted in Slack."
    else:
        headline = f"Rejected: {stage} of {pipeline} will not be deployed"
        follow = f"Commit {commit[:12]} will not be deployed to {stage}; the release ends here."
    body = (
        f"<h1>{_e(headline)}</h1>\n"
        f"<p>{_e(follow)}</p>\n"
        f'<p class="sub">Decided at {_e(_when(decided_at))}. This link cannot be used again.</p>'
    )
    return _document(headline, body)


def message_page(title: str, message: str, *, status: int | None = None, detail: str | None = None) -> str:
    """A refusal, an error or a notice: a title, what happened, and what to do."""
    code = f'<p class="sub">HTTP {status}</p>\n' if status else ""
    more = f"<p>{_e(detail)}</p>\n" if detail else ""
    return _document(title, f"<h1>{_e(title)}</h1>\n{code}<p>{_e(message)}</p>\n{more}".rstrip())
