"""`deployer report`: DORA figures computed by hand for a fixture history (a rollback, a failure
never restored, a release still in flight, a push time with a UTC offset, a release pushed before
the window but deployed inside it), the empty cases, the JSON keys, an HTML page that a strict
Content-Security-Policy allows, and the command against a moto table (Query on the pipeline
index, paginated, never a Scan).

Definitions followed: the Four Keys of Google's DORA team, "Are you an Elite DevOps performer?
Find out with the Four Keys Project" (Google Cloud blog, 2020,
https://cloud.google.com/blog/products/devops-sre/using-the-four-keys-to-measure-your-devops-performance):
"Change Failure Rate—The percentage of deployments causing a failure in production"; "Time to
Restore Service—How long it takes an organization to recover from a failure in production".
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState
from deployer_cli import main
from deployer_cli.views import report
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 8, tzinfo=UTC)
STAGES = ("dev", "prod")


def stage(state: StageState, finished: str | None, started: str = "2026-01-01T00:00:00Z") -> StageRecord:
    return StageRecord(state=state, cluster="c", service="web", started_at=started, finished_at=finished)


def release(
    name: str,
    pushed: str,
    state: ReleaseState,
    at: str | None,
    stages: dict[str, StageRecord] | None = None,
    **extra: Any,
) -> Release:
    kind = extra.pop("kind", "push")
    return Release(
        release_id=f"web@{name}",
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=name,
        pushed_at=pushed,
        order_key=f"{pushed}#000#{name}",
        state=state,
        created_at=extra.pop("created_at", pushed),
        updated_at=extra.pop("updated_at", pushed),
        stage=at,
        stages=stages or {},
        kind=kind,
        **extra,
    )


def deployed(name: str, pushed: str, finished: str) -> Release:
    return release(
        name,
        pushed,
        ReleaseState.RELEASED,
        "prod",
        {"dev": stage(StageState.DEPLOYED, pushed), "prod": stage(StageState.DEPLOYED, finished)},
    )


def failed_in_prod(name: str, pushed: str, finished: str) -> Release:
    return release(
        name,
        pushed,
        ReleaseState.DEPLOY_FAILED,
        "prod",
        {"dev": stage(StageState.DEPLOYED, pushed), "prod": stage(StageState.FAILED, finished)},
    )


def history() -> list[Release]:
    """The fixture, with each figure worked out by hand in the tests below."""
    return [
        # pushed before the window, deployed before it: read, not counted
        deployed("h-old", "2026-10-20T10:00:00Z", "2026-10-20T10:30:00Z"),
        # pushed before the window, deployed inside it: counted, lead 2h
        deployed("i-late", "2026-10-31T23:00:00Z", "2026-11-01T01:00:00Z"),
        # lead 30m
        deployed("a", "2026-11-02T10:00:00Z", "2026-11-02T10:30:00Z"),
        # pushed 09:00 at UTC+2 = 07:00 UTC, deployed 08:00 UTC: lead 1h; then rolled back (asked 09:00)
        deployed("b", "2026-11-03T09:00:00+02:00", "2026-11-03T08:00:00Z"),
        release(
            "rollback-prod-1",
            "2026-11-03T09:00:00Z",
            ReleaseState.RELEASED,
            "prod",
            {"prod": stage(StageState.DEPLOYED, "2026-11-03T09:10:00Z")},
            kind="rollback",
            rollback_of="web@b",
            created_at="2026-11-03T09:00:00Z",
        ),
        # failed in prod at 12:20; the next success is d at 11-05 00:20: restored after 12h
        failed_in_prod("c", "2026-11-04T12:00:00Z", "2026-11-04T12:20:00Z"),
        # lead 20m
        deployed("d", "2026-11-05T00:00:00Z", "2026-11-05T00:20:00Z"),
        # failed in dev: never reached prod, not attempted
        release(
            "e",
            "2026-11-06T10:00:00Z",
            ReleaseState.DEPLOY_FAILED,
            "dev",
            {"dev": stage(StageState.FAILED, "2026-11-06T10:05:00Z")},
        ),
        # waiting for prod's approval: in flight
        release(
            "f",
            "2026-11-06T11:00:00Z",
            ReleaseState.AWAITING_APPROVAL,
            "prod",
            {"dev": stage(StageState.DEPLOYED, "2026-11-06T11:05:00Z")},
        ),
        # rejected while ECS paused its prod deployment: stopped by a person, neither attempted nor failed
        release(
            "g",
            "2026-11-06T12:00:00Z",
            ReleaseState.REJECTED,
            "prod",
            {
                "dev": stage(StageState.DEPLOYED, "2026-11-06T12:05:00Z"),
                "prod": stage(StageState.FAILED, "2026-11-06T12:30:00Z"),
            },
        ),
        # failed in prod, nothing after it: not restored yet
        failed_in_prod("j", "2026-11-07T10:00:00Z", "2026-11-07T10:30:00Z"),
    ]


def computed(releases: list[Release] | None = None, stages: tuple[str, ...] = STAGES) -> report.PipelineReport:
    return report.compute("web", history() if releases is None else releases, stages=stages, since=SINCE, until=UNTIL)


# -- the figures, by hand ----------------------------------------------------------------------------


def test_deployment_frequency_counts_push_releases_that_reached_prod_inside_the_window() -> None:
    figures = computed()
    assert [d.commit for d in figures.deployments] == ["i-late", "a", "b", "d"]
    assert figures.per_day == pytest.approx(4 / 7)
    assert figures.per_week == pytest.approx(4.0)
    assert figures.rollbacks == 1
    assert figures.in_flight == ("web@f",)
    assert figures.releases_read == 11
    assert figures.by_day() == [
        (date(2026, 11, 1), 1, 7200.0),
        (date(2026, 11, 2), 1, 1800.0),
        (date(2026, 11, 3), 1, 3600.0),
        (date(2026, 11, 4), 0, None),
        (date(2026, 11, 5), 1, 1200.0),
        (date(2026, 11, 6), 0, None),
        (date(2026, 11, 7), 0, None),
        (date(2026, 11, 8), 0, None),
    ]


def test_lead_time_is_push_to_prod_in_utc_with_the_median_and_no_p90_under_ten() -> None:
    lead = computed().lead_time
    # 2h, 30m, 1h (the +02:00 push), 20m -> median (30m + 1h) / 2
    assert lead.samples == 4
    assert lead.median == 2700.0
    assert lead.p90 is None
    assert lead.note == "4 releases: too few for a p90 (needs 10)"


def test_change_failure_rate_counts_failed_and_rolled_back_prod_deployments() -> None:
    figures = computed()
    # attempted: i-late, a, b, c, d, j (not e: dev only; not g: rejected in a pause; not h: before the window)
    assert figures.attempted == 6
    assert [(f.commit, f.how) for f in figures.failures] == [("b", "rolled back"), ("c", "failed"), ("j", "failed")]
    assert figures.change_failure_rate == 0.5
    assert figures.cfr_note() == "6 deployments: one failure more or less moves it by 17 points"


def test_time_to_restore_runs_to_the_next_successful_prod_deployment() -> None:
    figures = computed()
    by_commit = {f.commit: f for f in figures.failures}
    assert by_commit["b"].restore_seconds == 600  # the rollback itself reached prod 10 minutes after it was asked
    assert by_commit["b"].restored_by == "web@rollback-prod-1"
    assert by_commit["c"].restore_seconds == 12 * 3600
    assert by_commit["c"].restored_by == "web@d"
    assert by_commit["j"].restored_at is None
    restore = figures.restore
    assert restore.samples == 2
    assert restore.median == (600 + 12 * 3600) / 2
    assert [f.commit for f in figures.unrestored] == ["j"]


def test_the_table_says_what_each_figure_stands_on() -> None:
    text = report.render_table(report.Report(SINCE, UNTIL, (computed(),)))
    assert text == (
        "DORA figures, 2026-11-01 00:00 to 2026-11-08 00:00 UTC (7 days)\n"
        "\n"
        "pipeline web (production stage prod): 11 releases read, 1 release in flight (not counted)\n"
        "  deployment frequency   0.57 a day, 4.00 a week: 4 deployments to prod (and 1 rollback)\n"
        "  lead time for changes  median 45m 0s, p90 —\n"
        "                         (4 releases: too few for a p90 (needs 10))\n"
        "  change failure rate    50%: 3 of 6 deployments to prod failed or rolled back\n"
        "                         (6 deployments: one failure more or less moves it by 17 points)\n"
        "  time to restore        median 6h 5m, p90 —; 1 not restored yet\n"
        "                         (2 restores: too few for a p90 (needs 10))\n"
        "  - rolled back b at 2026-11-03 09:00 UTC, restored 10m 0s later by rollback-prod-1\n"
        "  - failed c at 2026-11-04 12:20 UTC, restored 12h 0m later by d\n"
        "  - failed j at 2026-11-07 10:30 UTC, not restored yet\n"
    )
    assert max(len(line) for line in text.splitlines()) <= 100


def test_no_releases_is_said_plainly() -> None:
    empty = computed([])
    assert (empty.attempted, empty.deployments, empty.failures, empty.change_failure_rate) == (0, (), (), None)
    assert empty.lead_time.note == "no releases"
    text = "\n".join(report.pipeline_lines(empty))
    assert "deployment frequency   0.00 a day, 0.00 a week: 0 deployments to prod\n" in text
    assert "lead time for changes  —\n                         (no releases)" in text
    assert (
        "change failure rate    —\n                         (no deployment to production ended in the window)" in text
    )
    assert "time to restore        —\n                         (no failure)" in text
    # without the configuration and without a released release, nothing names production
    unknown = report.compute("web", [], since=SINCE, until=UNTIL, configured=False)
    assert unknown.stage is None
    assert "nothing to measure" in "\n".join(report.pipeline_lines(unknown))


def test_without_the_configuration_production_is_where_releases_end() -> None:
    assert computed(stages=()).stage == "prod"
    assert computed(stages=()).attempted == 6


def test_a_rollback_that_stopped_a_deployment_in_flight_restores_when_it_ends() -> None:
    # the rollback stopped c's prod deployment (no stage record of its own, RELEASED at once)
    c = failed_in_prod("c", "2026-11-04T12:00:00Z", "2026-11-04T12:20:00Z")
    stop = release(
        "rollback-prod-2",
        "2026-11-04T12:19:00Z",
        ReleaseState.RELEASED,
        "prod",
        kind="rollback",
        rollback_of="web@c",
        created_at="2026-11-04T12:19:00Z",
        updated_at="2026-11-04T12:21:00Z",
    )
    figures = computed([c, stop])
    (failure,) = figures.failures
    assert failure.how == "failed"
    assert failure.restore_seconds == 60
    assert figures.rollbacks == 1


def test_ten_releases_give_a_nearest_rank_p90() -> None:
    releases = [
        deployed(f"r{n}", f"2026-11-02T{n:02d}:00:00Z", f"2026-11-02T{n:02d}:{n + 1:02d}:00Z") for n in range(10)
    ]
    lead = computed(releases).lead_time
    assert lead.samples == 10
    assert lead.median == 330.0  # 1..10 minutes: (5 + 6) / 2 minutes
    assert lead.p90 == 540.0  # the 9th smallest of 10 (ceil(0.9 × 10) = 9)
    assert lead.note is None


# -- JSON --------------------------------------------------------------------------------------------


def test_json_has_stable_keys_and_the_same_numbers() -> None:
    document = report.to_json(report.Report(SINCE, UNTIL, (computed(),)))
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {"schema", "since", "until", "days", "pipelines"}
    assert (document["schema"], document["since"], document["until"], document["days"]) == (
        1,
        "2026-11-01T00:00:00Z",
        "2026-11-08T00:00:00Z",
        7.0,
    )
    (web,) = document["pipelines"]
    assert set(web) == {
        "pipeline",
        "production_stage",
        "configured",
        "releases_read",
        "in_flight",
        "deployment_frequency",
        "lead_time",
        "change_failure_rate",
        "time_to_restore",
        "deployments",
    }
    assert web["deployment_frequency"]["deployments"] == 4
    assert web["deployment_frequency"]["by_day"][0] == {
        "date": "2026-11-01",
        "deployments": 1,
        "median_lead_time_seconds": 7200.0,
    }
    assert web["lead_time"] == {
        "samples": 4,
        "median_seconds": 2700.0,
        "p90_seconds": None,
        "note": "4 releases: too few for a p90 (needs 10)",
    }
    assert web["change_failure_rate"]["rate"] == 0.5
    assert web["time_to_restore"]["not_restored"] == 1
    assert web["time_to_restore"]["failures"][1] == {
        "release_id": "web@c",
        "commit": "c",
        "how": "failed",
        "at": "2026-11-04T12:20:00Z",
        "restored_at": "2026-11-05T00:20:00Z",
        "restored_by": "web@d",
        "restore_seconds": 43200.0,
    }
    assert web["deployments"][2]["pushed_at"] == "2026-11-03T07:00:00Z"  # the +02:00 push, in UTC


# -- HTML --------------------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.styles: list[str] = []
        self.csp: str | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value) for name, value in attrs)
        values = dict(attrs)
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.csp = values.get("content")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_the_html_page_is_self_contained_and_passes_a_strict_csp() -> None:
    releases = history()
    releases[2] = deployed("<script>alert(1)</script>", "2026-11-02T10:00:00Z", "2026-11-02T10:30:00Z")
    text = report.render_html(report.Report(SINCE, UNTIL, (computed(releases),)))
    page = Page()
    page.feed(text)
    # no script, no inline style attribute or event handler, nothing fetched from anywhere
    assert "script" not in page.tags
    assert "<script>alert(1)</script>" not in text
    assert not [a for a in page.attributes if a[1] == "style" or a[1].startswith("on")]
    assert not [a for a in page.attributes if a[1] in {"src", "href"}]
    assert not re.search(r"url\(|@import", text)
    # the policy allows nothing but the one style block, by its hash
    assert page.csp is not None
    (css,) = page.styles
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert page.csp.startswith(f"default-src 'none'; style-src 'sha256-{digest}'")
    # the chart: one bar per day with deployments (4 days), one dot per day with a lead time
    assert page.tags.count("svg") == 1
    assert page.tags.count("rect") == 4
    assert page.tags.count("circle") == 4
    assert "50%: 3 of 6 deployments to prod failed or rolled back" in text


# -- properties --------------------------------------------------------------------------------------

MINUTES = st.integers(min_value=0, max_value=7 * 24 * 60)


@st.composite
def histories(draw: st.DrawFn) -> list[Release]:
    releases = []
    for n in range(draw(st.integers(min_value=0, max_value=25))):
        pushed = SINCE - timedelta(days=2) + timedelta(minutes=draw(MINUTES))
        took = timedelta(minutes=draw(st.integers(min_value=0, max_value=3000)))
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        outcome = draw(st.sampled_from(["deployed", "failed", "moving", "dev-failed"]))
        if outcome == "deployed":
            releases.append(deployed(f"c{n}", pushed.strftime(fmt), (pushed + took).strftime(fmt)))
        elif outcome == "failed":
            releases.append(failed_in_prod(f"c{n}", pushed.strftime(fmt), (pushed + took).strftime(fmt)))
        else:
            state = ReleaseState.DEPLOYING if outcome == "moving" else ReleaseState.DEPLOY_FAILED
            releases.append(release(f"c{n}", pushed.strftime(fmt), state, "dev"))
    return releases


@settings(max_examples=60, deadline=None)
@given(histories())
def test_figures_hold_together_for_any_history(releases: list[Release]) -> None:
    figures = computed(releases)
    assert len(figures.failures) <= figures.attempted
    assert len(figures.deployments) <= figures.attempted
    rate = figures.change_failure_rate
    assert rate is None if figures.attempted == 0 else 0 <= rate <= 1
    assert sum(count for _, count, _ in figures.by_day()) == len(figures.deployments)
    lead = figures.lead_time
    if lead.p90 is not None:
        assert lead.median is not None
        assert lead.median <= lead.p90
    assert all(f.restore_seconds is None or f.restore_seconds > 0 for f in figures.failures)
    assert math.isfinite(figures.per_day)
    json.dumps(report.to_json(report.Report(SINCE, UNTIL, (figures,))))


# -- the command, against a moto table ----------------------------------------------------------------


@pytest.fixture
def world(moto_aws: None, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    """The world in moto (the command builds its own clients)."""
    for name in ("DEPLOYER_TABLE", "DEPLOYER_CONFIG_TABLE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return world


def _released(world: World, label: str, old: str | None, when: str) -> str:
    (started,) = on_push(
        parse_event(CodeCommitReferenceEvent, world.push(commit_id(label), old, time=when)), world.deps
    )
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    for name in ("dev", "prod"):
        current = world.store.get(release_id)
        assert current is not None
        if name == "prod":
            event: dict[str, Any] = load_event("approval_decided_approve")
            event["detail"].update(release_id=release_id, stage="prod", approval_id=current.approval_id)
            from deployer.events.deployer_bus import ApprovalDecidedEvent

            on_approval(parse_event(ApprovalDecidedEvent, event), world.deps)
            current = world.store.get(release_id)
            assert current is not None
        sample: dict[str, Any] = load_event("ecs_deployment_completed")
        service = world.account.services[name]
        sample["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
        sample["detail"]["deploymentId"] = current.stages[name].deployment_id
        on_deployment(parse_event(EcsDeploymentStateChangeEvent, sample), world.deps)
    return release_id


def test_releases_since_pages_through_the_pipeline_index(world: World) -> None:
    for n in range(5):
        world.store.create(
            pipeline="web",
            repository="web-app",
            branch="main",
            commit=commit_id(f"p{n}"),
            previous_commit=None,
            pusher=None,
            pushed_at=f"2026-11-0{n + 1}T10:00:00Z",
        )
    releases, pages = world.store.releases_since("web", "2026-11-02T00:00:00Z", page_size=2)
    assert [r.pushed_at for r in releases] == [f"2026-11-0{n}T10:00:00Z" for n in (2, 3, 4, 5)]
    assert pages >= 2  # 2 + 2 (DynamoDB may answer a third, empty page)
    everything, pages = world.store.releases_since("web", "2026-11-01T00:00:00Z", page_size=2)
    assert len(everything) == 5
    assert pages == 3


def test_the_command_reads_with_queries_only_and_prints_the_figures(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _released(world, "one", None, "2026-11-29T10:00:00Z")
    calls: list[str] = []
    real_client = boto3.session.Session.client

    def counting_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = real_client(self, *args, **kwargs)
        client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
        return client

    monkeypatch.setattr(boto3.session.Session, "client", counting_client)
    released = world.store.get(first)
    assert released is not None
    assert released.state is ReleaseState.RELEASED
    finished = report.parse_time(released.stages["prod"].finished_at)
    assert finished is not None
    monkeypatch.setattr("deployer_cli.commands.report._now", lambda: finished + timedelta(hours=1))
    names = world.names
    args = ["report", "--table", names.table, "--config-table", names.config_table, "--since", "7d"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pipeline web (production stage prod): 1 release read" in out
    assert "deployment frequency   0.14 a day, 1.00 a week: 1 deployment to prod\n" in out
    assert "change failure rate    0%: 0 of 1 deployment to prod failed or rolled back\n" in out
    assert "Scan" not in calls
    assert calls.count("Query") == 1
    # --json: the same figures
    assert main([*args, "--json"]) == 0
    (web,) = json.loads(capsys.readouterr().out)["pipelines"]
    assert web["deployments"][0]["release_id"] == first
    assert web["lead_time"]["samples"] == 1


def test_html_writes_the_page(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.html"
    names = world.names
    code = main(["report", "--table", names.table, "--config-table", names.config_table, "--html", str(target)])
    assert code == 0
    assert capsys.readouterr().out.startswith(f"Wrote {target} (")
    assert "<svg" in target.read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday': use a duration (30d, 12h, 2w) or a UTC date or time"),
        (("--since", "0d"), "use a duration"),
        (("--since", "2999-01-01"), "is not in the past"),
        (("--since", "99999w"), "more than ten years"),
        (("--html", "."), "is a directory"),
        (("--html", "no/such/dir/r.html"), "does not exist"),
    ],
)
def test_bad_arguments_are_one_line_and_change_nothing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    names = world.names
    before = sorted(os.listdir(tmp_path))
    assert main(["report", "--table", names.table, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deployer report: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_json_and_html_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["report", "--json", "--html", "x.html"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
