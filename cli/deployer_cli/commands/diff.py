"""`deployer diff`: what `deployer deploy` with the same arguments would change, without changing it.

The task definition part is a unified diff of the RegisterTaskDefinition request (JSON, keys
sorted) against the running revision's registrable fields: only `image` lines, and the
`environment` / `secrets` entries that --env, --secret and --unset change, should differ (secrets
by reference: the deployer never reads a secret's value).
The deployment configuration part lists each field before -> after.

Exit status, like diff(1): 0 no change, 3 changes (1 is taken by "refused", as for `deploy`),
1 refused or an AWS failure (one line), 2 unusable arguments. --dry-run, --wait and --timeout
are accepted so that a deploy command line becomes a diff by changing one word; they change
nothing here.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from deployer_cli.commands.deploy import (
    add_target_arguments,
    config_text,
    findings_text,
    guarded,
    make_plan,
    say,
    settings_text,
    short_arn,
)

if TYPE_CHECKING:
    from deployer_cli.oneshot import DeployPlan

EXIT_NO_CHANGE = 0
EXIT_REFUSED = 1
EXIT_CHANGES = 3


def register(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="accepted for symmetry with deploy (diff never writes)")
    parser.add_argument("--wait", action="store_true", help="accepted for symmetry with deploy (no effect)")
    parser.add_argument("--timeout", metavar="SECONDS", help="accepted for symmetry with deploy (no effect)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return guarded("diff", lambda: _diff(args))


def exit_status(plan: DeployPlan) -> int:
    if not plan.valid:
        return EXIT_REFUSED
    return EXIT_NO_CHANGE if plan.nothing_to_do else EXIT_CHANGES


def _diff(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    code = exit_status(plan)
    if args.json:
        document = {
            "changed": not plan.nothing_to_do,
            "valid": plan.valid,
            "exit_status": code,
            **{key: value for key, value in plan.to_dict().items() if key not in {"rollout", "notes"}},
        }
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
        return code
    where = f"{plan.cluster}/{plan.service}"
    if plan.registers:
        say(f"Task definition of {where} ({short_arn(plan.task_definition_arn)}):")
        say("\n".join(plan.task_definition_diff))
        say(settings_text(plan))
    else:
        running = ", ".join(f"{name} runs {image}" for name, image in plan.images.items()) or "settings as asked"
        say(f"Task definition of {where}: no change ({running}).")
    say(config_text(plan))
    say(findings_text("Errors", plan.errors))
    say(findings_text("Warnings", plan.validation.warnings))
    if code == EXIT_REFUSED:
        say("Refused: `deployer deploy` with these arguments would be refused (nothing would change).")
    elif code == EXIT_CHANGES:
        changed = ["the task definition (a new revision)"] if plan.registers else []
        changed += ["the deployment configuration"] if plan.config_changed else []
        say(f"Changes: {' and '.join(changed)}.")
    else:
        say("No changes.")
    return code
