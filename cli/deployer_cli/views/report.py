"""DORA figures from the release store: what `deployer report` computes and shows.

The four keys, as Google's DORA team defines them (Four Keys project, "Are you an Elite DevOps
performer? Find out with the Four Keys Project", Google Cloud blog, 2020):

- Deployment Frequency: how often an organization successfully releases to production
- Lead Time for Changes: the amount of time it takes a commit to get into production
- Change Failure Rate: the percentage of deployments causing a failure in production
- Time to Restore Service: how long it takes an organization to recover from a failure in production

Here, from the release records alone (no incident tracker), per pipeline, with "production" the
pipeline's last stage:

- a **deployment** is a push release whose production stage ended DEPLOYED; it happened when that
  stage finished. Frequency = deployments in the window / the window's days (and × 7 a week),
  with the count of each UTC day.
- **lead time** of a deployment = its production stage's end − its push time (the CodeCommit
  event's `time`). Median, and p90 by the nearest-rank method (the ⌈0.9 n⌉-th smallest), shown
  only from 10 samples on.
- **change failure rate** = failed / attempted, where attempted are the push releases whose
  production deployment ended (DEPLOYED, or FAILED with the release DEPLOY_FAILED) in the window,
  and failed are those that failed there or were later rolled back (a rollback release names
  them in `rollback_of`). A release rejected or expired while ECS paused its production
  deployment is neither: a person stopped it before it was released.
- **time to restore** of a failure = from the failure (the failed deployment's end, or the moment
  the rollback was asked) to the next successful production deployment of any kind (a rollback's
  own counts). Median; a failure with no success after it is "not restored yet".

Releases still moving (building, deploying, waiting for approval) are counted apart, never in a
figure. Every time is read as ISO 8601 and turned into UTC, so a push time with an offset
(`+02:00`) lands on the right UTC day.

Pure functions over `Release` objects: `compute` is what the tests check by hand.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from deployer.releases.model import Release, ReleaseState, StageState

__all__ = [
    "P90_MIN_SAMPLES",
    "PipelineReport",
    "Report",
    "compute",
    "duration_text",
    "production_stage",
    "render_html",
    "render_table",
    "to_json",
]

P90_MIN_SAMPLES: Final = 10
FEW_SAMPLES: Final = 10  # below this, every figure says how few it stands on
JSON_SCHEMA_VERSION: Final = 1
MOVING_STATES: Final = frozenset(
    {
        ReleaseState.BUILDING,
        ReleaseState.BUILT,
        ReleaseState.DEPLOYING,
        ReleaseState.DEPLOYED,
        ReleaseState.AWAITING_APPROVAL,
    }
)


def parse_time(moment: str | None) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC); None when absent or unreadable."""
    if not moment:
        return None
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


# -- one release, as the figures see it ------------------------------------------------------------


def production_success(release: Release, stage: str) -> datetime | None:
    """When `release` put its revision on the production stage, or None if it never did. A rollback
    that stopped a deployment in flight has no stage record of its own: its end is when it ended."""
    record = release.stages.get(stage)
    if record is not None and record.state is StageState.DEPLOYED:
        return parse_time(record.finished_at) or parse_time(release.updated_at)
    if release.is_rollback and release.state is ReleaseState.RELEASED and release.stage == stage and record is None:
        return parse_time(release.updated_at)
    return None


def production_failure(release: Release, stage: str) -> datetime | None:
    """When a push release's production deployment failed (the release ended DEPLOY_FAILED there)."""
    record = release.stages.get(stage)
    if release.is_rollback or record is None or record.state is not StageState.FAILED:
        return None
    if release.state is not ReleaseState.DEPLOY_FAILED:
        return None  # rejected or expired during a paused deployment: stopped by a person, not failed
    return parse_time(record.finished_at) or parse_time(release.updated_at)


def production_stage(stages: Sequence[str], releases: Iterable[Release]) -> str | None:
    """The pipeline's last stage; without the pipeline's configuration, the stage its released
    push releases ended on most often."""
    if stages:
        return stages[-1]
    counts: dict[str, int] = {}
    for release in releases:
        if not release.is_rollback and release.state is ReleaseState.RELEASED and release.stage:
            counts[release.stage] = counts.get(release.stage, 0) + 1
    return max(counts, key=lambda name: (counts[name], name)) if counts else None


# -- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    release_id: str
    commit: str
    kind: str
    pushed_at: datetime | None
    deployed_at: datetime

    @property
    def lead_time_seconds(self) -> float | None:
        return (self.deployed_at - self.pushed_at).total_seconds() if self.pushed_at else None


@dataclass(frozen=True)
class Failure:
    release_id: str
    commit: str
    how: str  # "failed" (its production deployment failed) | "rolled back" (a rollback undid it)
    at: datetime
    restored_at: datetime | None
    restored_by: str | None

    @property
    def restore_seconds(self) -> float | None:
        return (self.restored_at - self.at).total_seconds() if self.restored_at else None


@dataclass(frozen=True)
class Summary:
    """Median and p90 of some durations (seconds), with a note when the sample is small."""

    samples: int
    median: float | None
    p90: float | None
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "median_seconds": self.median,
            "p90_seconds": self.p90,
            "note": self.note,
        }


def nearest_rank(values: Sequence[float], percentile: float) -> float:
    """The ⌈p/100 × n⌉-th smallest value (nearest-rank percentile)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Sequence[float], noun: str) -> Summary:
    count = len(values)
    if not count:
        return Summary(0, None, None, f"no {noun}s")
    median = float(statistics.median(values))
    if count < P90_MIN_SAMPLES:
        plural = noun if count == 1 else f"{noun}s"
        return Summary(count, median, None, f"{count} {plural}: too few for a p90 (needs {P90_MIN_SAMPLES})")
    return Summary(count, median, nearest_rank(values, 90), None)


@dataclass(frozen=True)
class PipelineReport:
    pipeline: str
    stage: str | None  # the production stage; None: nothing says which (no configuration, nothing released)
    since: datetime
    until: datetime
    releases_read: int
    deployments: tuple[Deployment, ...]
    attempted: int  # push releases whose production deployment ended in the window
    failures: tuple[Failure, ...]
    rollbacks: int  # rollback releases that reached production in the window
    in_flight: tuple[str, ...]  # release ids still moving
    configured: bool = True

    @property
    def days(self) -> float:
        return max((self.until - self.since).total_seconds() / 86400, 1 / 86400)

    @property
    def per_day(self) -> float:
        return len(self.deployments) / self.days

    @property
    def per_week(self) -> float:
        return self.per_day * 7

    @property
    def change_failure_rate(self) -> float | None:
        return len(self.failures) / self.attempted if self.attempted else None

    @property
    def lead_time(self) -> Summary:
        times = [d.lead_time_seconds for d in self.deployments if d.lead_time_seconds is not None]
        return summarize([max(0.0, t) for t in times], "release")

    @property
    def restore(self) -> Summary:
        return summarize([f.restore_seconds for f in self.failures if f.restore_seconds is not None], "restore")

    @property
    def unrestored(self) -> tuple[Failure, ...]:
        return tuple(f for f in self.failures if f.restored_at is None)

    def by_day(self) -> list[tuple[date, int, float | None]]:
        """Each UTC day of the window: (day, deployments that day, their median lead time in seconds)."""
        first, last = self.since.date(), self.until.date()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        out = []
        for day in days:
            that_day = [d for d in self.deployments if d.deployed_at.date() == day]
            leads = [d.lead_time_seconds for d in that_day if d.lead_time_seconds is not None]
            out.append((day, len(that_day), float(statistics.median(leads)) if leads else None))
        return out

    def cfr_note(self) -> str | None:
        if not self.attempted:
            return "no deployment to production ended in the window"
        if self.attempted < FEW_SAMPLES:
            plural = "deployment" if self.attempted == 1 else "deployments"
            return f"{self.attempted} {plural}: one failure more or less moves it by {100 / self.attempted:.0f} points"
        return None


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    pipelines: tuple[PipelineReport, ...] = field(default_factory=tuple)


def compute(
    pipeline: str,
    releases: Iterable[Release],
    *,
    stages: Sequence[str] = (),
    since: datetime,
    until: datetime,
    configured: bool = True,
) -> PipelineReport:
    """The figures of one pipeline over [since, until] from its releases (any order; releases
    outside the window are read but not counted)."""
    everything = list(releases)
    stage = production_stage(stages, everything)

    def inside(moment: datetime | None) -> bool:
        return moment is not None and since <= moment <= until

    moving = tuple(r.release_id for r in everything if r.state in MOVING_STATES)
    if stage is None:
        return PipelineReport(pipeline, None, since, until, len(everything), (), 0, (), 0, moving, configured)

    successes: list[tuple[datetime, Release]] = []
    for release in everything:
        moment = production_success(release, stage)
        if moment is not None:
            successes.append((moment, release))
    successes.sort(key=lambda pair: pair[0])

    deployments = tuple(
        Deployment(r.release_id, r.commit, r.kind, parse_time(r.pushed_at), moment)
        for moment, r in successes
        if not r.is_rollback and inside(moment)
    )
    rollbacks = sum(1 for moment, r in successes if r.is_rollback and inside(moment))

    undone: dict[str, datetime] = {}  # release id -> when a rollback of it was asked
    for release in everything:
        if release.is_rollback and release.rollback_of and release.stage == stage:
            asked = parse_time(release.created_at)
            if asked is not None and (release.rollback_of not in undone or asked < undone[release.rollback_of]):
                undone[release.rollback_of] = asked

    attempted = 0
    failures: list[Failure] = []
    for release in everything:
        if release.is_rollback:
            continue
        failed_at = production_failure(release, stage)
        deployed_at = production_success(release, stage)
        ended = failed_at or deployed_at
        if not inside(ended):
            continue
        attempted += 1
        if failed_at is not None:
            how, at = "failed", failed_at
        elif release.release_id in undone:
            how, at = "rolled back", undone[release.release_id]
        else:
            continue
        restored = next(((m, r) for m, r in successes if m > at), None)
        failures.append(
            Failure(
                release.release_id,
                release.commit,
                how,
                at,
                restored[0] if restored else None,
                restored[1].release_id if restored else None,
            )
        )
    failures.sort(key=lambda f: f.at)
    return PipelineReport(
        pipeline,
        stage,
        since,
        until,
        len(everything),
        deployments,
        attempted,
        tuple(failures),
        rollbacks,
        moving,
        configured,
    )


# -- text ------------------------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    """45s, 12m 5s, 3h 5m, 2d 4h; "—" for None."""
    if seconds is None:
        return "—"
    whole = round(max(0.0, seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _window_text(report: Report) -> str:
    days = (report.until - report.since).total_seconds() / 86400
    span = f"{days:.0f} days" if abs(days - round(days)) < 0.01 else f"{days:.1f} days"
    return f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC ({span})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _summary_value(summary: Summary) -> str:
    if summary.median is None:
        return "—"
    p90 = duration_text(summary.p90) if summary.p90 is not None else "—"
    return f"median {duration_text(summary.median)}, p90 {p90}"


def short_release(release_id: str) -> str:
    """Within its pipeline's section: `web@<40 hex>` -> `<12 hex>`, `web@rollback-...` -> `rollback-...`."""
    _pipeline, at, rest = release_id.partition("@")
    if not at:
        return release_id
    if len(rest) == 40 and all(c in "0123456789abcdef" for c in rest):
        return rest[:12]
    return rest


def heading(report: PipelineReport) -> str:
    where = f"production stage {report.stage}" if report.stage else "no production stage known"
    if not report.configured:
        where += "; not in the published configuration"
    moving = f", {_plural(len(report.in_flight), 'release')} in flight (not counted)" if report.in_flight else ""
    return f"pipeline {report.pipeline} ({where}): {_plural(report.releases_read, 'release')} read{moving}"


def figures(report: PipelineReport) -> list[tuple[str, str, str | None]]:
    """(figure, value, note) for the four keys; the note says what a figure stands on when that is little."""
    stage = report.stage or "production"
    rollbacks = f" (and {_plural(report.rollbacks, 'rollback')})" if report.rollbacks else ""
    rows: list[tuple[str, str, str | None]] = [
        (
            "deployment frequency",
            f"{report.per_day:.2f} a day, {report.per_week:.2f} a week: "
            f"{_plural(len(report.deployments), 'deployment')} to {stage}{rollbacks}",
            None,
        ),
        ("lead time for changes", _summary_value(report.lead_time), report.lead_time.note),
    ]
    rate = report.change_failure_rate
    if rate is None:
        rows.append(("change failure rate", "—", report.cfr_note()))
    else:
        rows.append(
            (
                "change failure rate",
                f"{rate * 100:.0f}%: {len(report.failures)} of {_plural(report.attempted, 'deployment')} "
                f"to {stage} failed or rolled back",
                report.cfr_note(),
            )
        )
    if not report.failures:
        rows.append(("time to restore", "—", "no failure"))
    else:
        value = _summary_value(report.restore)
        if report.unrestored:
            value += f"; {len(report.unrestored)} not restored yet"
        rows.append(("time to restore", value, report.restore.note))
    return rows


def failure_lines(report: PipelineReport) -> list[str]:
    lines = []
    for failure in report.failures:
        restored = (
            f"restored {duration_text(failure.restore_seconds)} later by {short_release(failure.restored_by)}"
            if failure.restored_by
            else "not restored yet"
        )
        lines.append(
            f"{failure.how} {short_release(failure.release_id)} at {failure.at:%Y-%m-%d %H:%M} UTC, {restored}"
        )
    return lines


_NAME_WIDTH: Final = 22


def pipeline_lines(report: PipelineReport) -> list[str]:
    lines = [heading(report)]
    if report.stage is None:
        lines.append("  nothing to measure: no release reached a last stage (publish the configuration to name it)")
        return lines
    for name, value, note in figures(report):
        lines.append(f"  {name:<{_NAME_WIDTH}} {value}")
        if note:
            lines.append(f"  {'':<{_NAME_WIDTH}} ({note})")
    lines.extend(f"  - {line}" for line in failure_lines(report))
    return lines


def render_table(report: Report) -> str:
    out = [f"DORA figures, {_window_text(report)}"]
    if not report.pipelines:
        out.append("no pipelines")
    for pipeline in report.pipelines:
        out.append("")
        out.extend(pipeline_lines(pipeline))
    return "\n".join(out) + "\n"


# -- JSON ------------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def pipeline_json(report: PipelineReport) -> dict[str, Any]:
    return {
        "pipeline": report.pipeline,
        "production_stage": report.stage,
        "configured": report.configured,
        "releases_read": report.releases_read,
        "in_flight": list(report.in_flight),
        "deployment_frequency": {
            "deployments": len(report.deployments),
            "per_day": round(report.per_day, 4),
            "per_week": round(report.per_week, 4),
            "rollbacks": report.rollbacks,
            "by_day": [
                {"date": day.isoformat(), "deployments": count, "median_lead_time_seconds": lead}
                for day, count, lead in report.by_day()
            ],
        },
        "lead_time": report.lead_time.to_json(),
        "change_failure_rate": {
            "attempted": report.attempted,
            "failed": len(report.failures),
            "rate": report.change_failure_rate,
            "note": report.cfr_note(),
        },
        "time_to_restore": {
            **report.restore.to_json(),
            "failures": [
                {
                    "release_id": f.release_id,
                    "commit": f.commit,
                    "how": f.how,
                    "at": _iso(f.at),
                    "restored_at": _iso(f.restored_at),
                    "restored_by": f.restored_by,
                    "restore_seconds": f.restore_seconds,
                }
                for f in report.failures
            ],
            "not_restored": len(report.unrestored),
        },
        "deployments": [
            {
                "release_id": d.release_id,
                "commit": d.commit,
                "pushed_at": _iso(d.pushed_at),
                "deployed_at": _iso(d.deployed_at),
                "lead_time_seconds": d.lead_time_seconds,
            }
            for d in report.deployments
        ],
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA_VERSION,
        "since": _iso(report.since),
        "until": _iso(report.until),
        "days": (report.until - report.since).total_seconds() / 86400,
        "pipelines": [pipeline_json(p) for p in report.pipelines],
    }


# -- HTML ------------------------------------------------------------------------------------------

_CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #1b1f24; padding: 0 1em; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { text-align: left; padding: 0.25em 0.8em 0.25em 0; vertical-align: top; }
th { font-weight: 600; color: #57606a; }
.note { color: #57606a; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
"""


def csp_for(css: str = _CSS) -> str:
    """The page's Content-Security-Policy: nothing loads, and only this one style block applies."""
    digest = hashlib.sha256(css.encode()).digest()
    style = f"'sha256-{base64.b64encode(digest).decode()}'"
    return f"default-src 'none'; style-src {style}; base-uri 'none'; form-action 'none'"


def _svg(report: PipelineReport, width: int = 720, height: int = 220) -> str:
    """Bars: deployments per UTC day (left axis). Dots: that day's median lead time (right axis)."""
    days = report.by_day()
    left, right, top, bottom = 40, 50, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    max_count = max([count for _, count, _ in days] + [1])
    leads = [lead for _, _, lead in days if lead is not None]
    max_lead = max([*leads, 0.0]) or 1.0
    slot = plot_w / max(len(days), 1)
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(report.pipeline)}: deployments per day and median lead time">',
        f"<title>{esc(report.pipeline)}: deployments to {esc(report.stage or '?')} per UTC day (bars) "
        f"and their median lead time (dots)</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#8c959f"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{max_count}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
        f'<text x="{left + plot_w + 6}" y="{top + 4}">{esc(duration_text(max_lead))}</text>',
        f'<text x="{left}" y="{height - 6}">deployments per day (bars) · median lead time (dots, right axis)</text>',
    ]
    for index, (day, count, lead) in enumerate(days):
        x = left + index * slot
        bar_h = plot_h * count / max_count
        if count:
            parts.append(
                f'<rect x="{x + slot * 0.15:.1f}" y="{top + plot_h - bar_h:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{bar_h:.1f}" fill="#2f81f7"><title>{day.isoformat()}: {count} '
                f"deployment{'s' if count != 1 else ''}</title></rect>"
            )
        if lead is not None:
            y = top + plot_h - plot_h * lead / max_lead
            parts.append(
                f'<circle cx="{x + slot / 2:.1f}" cy="{y:.1f}" r="3.5" fill="#cf222e"><title>{day.isoformat()}: '
                f"median lead time {esc(duration_text(lead))}</title></circle>"
            )
        if len(days) <= 14 or index % max(1, len(days) // 10) == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{day:%m-%d}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report, *, title: str = "Deployment report") -> str:
    """A self-contained page (no script, no external file, one hashed style block) that a strict
    Content-Security-Policy allows: the figures as tables and an inline SVG chart per pipeline."""
    esc = html.escape
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="note">DORA figures, {esc(_window_text(report))}. Production is each pipeline\'s last stage; '
        "the definitions are in docs/report.md.</p>",
    ]
    if not report.pipelines:
        body.append("<p>No pipelines.</p>")
    for pipeline in report.pipelines:
        body.append(f"<h2>{esc(heading(pipeline))}</h2>")
        if pipeline.stage is None:
            body.append('<p class="note">Nothing to measure: no release reached a last stage.</p>')
            continue
        rows = []
        for name, value, note in figures(pipeline):
            extra = f'<br><span class="note">{esc(note)}</span>' if note else ""
            rows.append(f"<tr><th>{esc(name)}</th><td>{esc(value)}{extra}</td></tr>")
        body.append("<table>" + "".join(rows) + "</table>")
        if pipeline.failures:
            items = "".join(f"<li>{esc(line)}</li>" for line in failure_lines(pipeline))
            body.append(f"<p>Failures:</p><ul>{items}</ul>")
        body.append(_svg(pipeline))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp_for())}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
