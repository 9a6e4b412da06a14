"""The pipelines file's housekeeping keys: a stage's `schedules:` and a pipeline's `keepRevisions`.
Every value is either accepted (and published as written) or refused with one located error;
nothing else ever escapes `load_config_text`."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer.pipelines.loader import check_config_text, from_published_json, load_config_text, to_published_json
from deployer.pipelines.schema import DEFAULT_KEEP_REVISIONS, MAX_KEEP_REVISIONS, MAX_SCHEDULES_PER_STAGE

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def config(*, keep: Any = None, dev: Any = None, prod: Any = None) -> dict[str, Any]:
    pipeline: dict[str, Any] = {
        "name": "web",
        "repository": "web-app",
        "branch": "main",
        "build": {"project": "web-app-build"},
        "container": "web",
        "stages": [
            {"name": "dev", "cluster": "dev", "service": "web"},
            {"name": "prod", "cluster": "prod", "service": "web"},
        ],
    }
    if keep is not None:
        pipeline["keepRevisions"] = keep
    if dev is not None:
        pipeline["stages"][0]["schedules"] = dev
    if prod is not None:
        pipeline["stages"][1]["schedules"] = prod
    return {"pipelines": [pipeline]}


def errors_of(data: dict[str, Any]) -> list[str]:
    return check_config_text(yaml.safe_dump(data, sort_keys=False), "p.yaml").error_messages


# -- keepRevisions -------------------------------------------------------------------------------------


def test_keep_revisions_defaults_to_ten_and_is_left_out_of_the_published_copy() -> None:
    loaded = load_config_text(yaml.safe_dump(config()))
    assert loaded.pipelines[0].revisions_to_keep == DEFAULT_KEEP_REVISIONS == 10
    assert "keepRevisions" not in to_published_json(loaded)


@pytest.mark.parametrize(("value", "kept"), [(1, 1), (3, 3), (MAX_KEEP_REVISIONS, MAX_KEEP_REVISIONS), ("all", None)])
def test_keep_revisions_takes_a_count_or_all_and_is_published_as_written(value: Any, kept: int | None) -> None:
    loaded = load_config_text(yaml.safe_dump(config(keep=value)))
    assert loaded.pipelines[0].revisions_to_keep == kept
    assert from_published_json(to_published_json(loaded)).pipelines[0].revisions_to_keep == kept


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "0 would keep no revision, not even the one a stage runs"),
        (-1, "-1 is outside 1..1000"),
        (1001, "1001 is outside 1..1000"),
        (True, "expected a whole number of revisions (1 to 1000) or `all`, got True"),
        ("10", "expected a whole number of revisions (1 to 1000) or `all`, got '10'"),
        ("none", "got 'none'"),
        (2.5, "got 2.5"),
    ],
)
def test_a_bad_keep_revisions_is_one_error_at_its_path(value: Any, fragment: str) -> None:
    (error,) = errors_of(config(keep=value))
    assert re.match(r"p\.yaml:\d+: pipelines\[0\]\.keepRevisions: ", error), error
    assert fragment in error


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.one_of(
        st.integers(-(10**6), 10**6),
        st.booleans(),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.just("all"),
        st.lists(st.integers(), max_size=2),
    )
)
def test_any_keep_revisions_is_accepted_as_a_count_or_refused_at_its_path(value: Any) -> None:
    result = check_config_text(yaml.safe_dump(config(keep=value)), "p.yaml")
    valid = value == "all" or (type(value) is int and 1 <= value <= MAX_KEEP_REVISIONS)
    if valid:
        assert result.config is not None, result.error_messages
        expected = None if value == "all" else value
        assert result.config.pipelines[0].revisions_to_keep == expected
    else:
        assert [e.path for e in result.errors] == ["pipelines[0].keepRevisions"], result.error_messages


# -- schedules -------------------------------------------------------------------------------------------


def test_schedules_read_as_written() -> None:
    loaded = load_config_text(
        yaml.safe_dump(
            config(
                dev=[{"rule": "web-cleanup"}, {"rule": "web-digest", "eventBus": "jobs"}],
                prod=[{"scheduler": "nightly-report"}, {"scheduler": "weekly", "group": "reports"}],
            )
        )
    )
    dev, prod = loaded.pipelines[0].stages
    assert [(s.kind, s.where, s.name, s.label) for s in dev.schedules or []] == [
        ("rule", "default", "web-cleanup", "rule web-cleanup"),
        ("rule", "jobs", "web-digest", "rule web-digest on bus jobs"),
    ]
    assert [(s.kind, s.where, s.name, s.label) for s in prod.schedules or []] == [
        ("scheduler", "default", "nightly-report", "schedule nightly-report"),
        ("scheduler", "reports", "weekly", "schedule weekly in group reports"),
    ]
    assert from_published_json(to_published_json(loaded)) == loaded


@pytest.mark.parametrize(
    ("schedules", "path", "fragment"),
    [
        ([{"scheduler": "a", "rule": "b"}], "schedules[0]", "give exactly one of `scheduler: NAME`"),
        ([{"group": "reports"}], "schedules[0]", "give exactly one of `scheduler: NAME`"),
        ([{"rule": "a", "group": "g"}], "schedules[0]", "`group` names an EventBridge Scheduler schedule group"),
        (
            [{"scheduler": "a", "eventBus": "b"}],
            "schedules[0]",
            "`eventBus` names the event bus of an EventBridge rule",
        ),
        (
            [{"scheduler": "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/a"}],
            "schedules[0].scheduler",
            "is not an EventBridge Scheduler name",
        ),
        ([{"rule": "a" * 65}], "schedules[0].rule", "is not an EventBridge rule name"),
        (
            [{"rule": "a", "eventBus": "bus with spaces"}],
            "schedules[0].eventBus",
            "is not an EventBridge event bus name",
        ),
        ([{"rule": "a", "target": "x"}], "schedules[0].target", "unknown key"),
        ([], "schedules", "needs at least 1 entry"),
        (
            [{"rule": f"r{n}"} for n in range(MAX_SCHEDULES_PER_STAGE + 1)],
            "schedules",
            "List should have at most 10 items",
        ),
        (
            [{"rule": "a"}, {"rule": "a"}],
            "schedules[1]",
            "rule 'a' is also listed at pipelines[0].stages[0].schedules[0]",
        ),
    ],
)
def test_a_bad_schedule_is_an_error_at_its_path(schedules: Any, path: str, fragment: str) -> None:
    errors = errors_of(config(dev=schedules))
    assert errors, "refused"
    assert any(f"pipelines[0].stages[0].{path}: " in e and fragment in e for e in errors), errors


def test_a_scheduled_task_follows_one_stage_only() -> None:
    (error,) = errors_of(config(dev=[{"scheduler": "nightly"}], prod=[{"scheduler": "nightly", "group": "default"}]))
    assert error.endswith(
        "pipelines[0].stages[1].schedules[0]: schedule 'nightly' is also listed at "
        "pipelines[0].stages[0].schedules[0]: a scheduled task follows exactly one stage, or two stages would move "
        "it back and forth between their revisions"
    )
    # the same name in another group, or a rule and a schedule of one name, are different things
    assert not errors_of(config(dev=[{"scheduler": "nightly"}], prod=[{"scheduler": "nightly", "group": "reports"}]))
    assert not errors_of(config(dev=[{"scheduler": "nightly"}], prod=[{"rule": "nightly"}]))


NAMES = st.one_of(
    st.sampled_from(["nightly", "web-cleanup", "a.b_c-d", "reports", "default", "jobs/x"]),
    st.text(max_size=12),
    st.integers(),
    st.none(),
    st.booleans(),
)
ENTRIES = st.dictionaries(st.sampled_from(["scheduler", "rule", "group", "eventBus", "other"]), NAMES, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dev=st.one_of(st.lists(ENTRIES, max_size=4), NAMES), prod=st.lists(ENTRIES, max_size=3))
def test_any_schedules_are_accepted_whole_or_refused_with_located_errors(dev: Any, prod: Any) -> None:
    result = check_config_text(yaml.safe_dump(config(dev=dev, prod=prod)))
    if not result.valid:
        assert result.errors
        located = r"pipelines\[0\]\.stages\[[01]\]\.schedules"
        assert all(re.match(located, e.path) for e in result.errors), result.error_messages
        return
    loaded = load_config_text(yaml.safe_dump(config(dev=dev, prod=prod)))
    keys = [s.key for stage in loaded.pipelines[0].stages for s in stage.schedules or []]
    assert len(keys) == len(set(keys))  # each scheduled task follows one stage
    for stage in loaded.pipelines[0].stages:
        for schedule in stage.schedules or []:
            assert (schedule.scheduler is None) != (schedule.rule is None)
    assert from_published_json(to_published_json(loaded)) == loaded


# -- the example and the docs ------------------------------------------------------------------------


def test_the_example_file_shows_both_keys() -> None:
    loaded = load_config_text((ROOT / "pipelines.example.yaml").read_text(), "pipelines.example.yaml")
    web = loaded.pipeline_named("web")
    assert web is not None
    assert web.revisions_to_keep == 20
    kinds = {s.kind for stage in web.stages for s in stage.schedules or []}
    assert kinds == {"scheduler", "rule"}


def test_every_yaml_example_of_docs_housekeeping_is_valid() -> None:
    text = (ROOT / "docs" / "housekeeping.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        result = check_config_text(block, "docs/housekeeping.md")
        assert result.valid, result.error_messages


def test_the_readme_example_stage_is_valid() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Scheduled tasks and old revisions", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    config_text = (
        "pipelines:\n  - name: web\n    repository: web-app\n    branch: main\n"
        "    build: {project: web-app-build}\n    container: web\n    stages:\n" + textwrap.indent(example, "      ")
    )
    result = check_config_text(config_text, "README.md")
    assert result.valid, result.error_messages
    (stage,) = result.config.pipelines[0].stages if result.config else ()
    assert [s.label for s in stage.schedules or []] == [
        "schedule web-nightly-report",
        "rule web-invoices on bus billing",
    ]
