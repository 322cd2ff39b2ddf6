"""What ``gql-api migrate`` prints when it is done: the counts, the first findings, and
the verification's table."""

from __future__ import annotations

from pathlib import Path

import click

from gql_api.ops.migration.runner import Outcome
from gql_api.ops.migration.verify import Verification


def print_outcome(outcome: Outcome, report: Path, dry_run: bool, retries: int) -> None:
    if outcome.finished_before:
        click.echo("already migrated: the checkpoint says done, so nothing was read again")
    written = "would write" if dry_run else "written"
    for kind, counts in outcome.counts.items():
        click.echo(
            f"{kind}: {counts.read} read, {counts.written} {written} "
            f"({counts.repaired} repaired), {counts.already} already there, "
            f"{counts.left_behind} left behind"
        )
    if retries:
        click.echo(f"calls tried again after throttling or a timeout: {retries}")
    for finding in outcome.findings:
        outcome_word = "repaired" if finding.repaired else "left behind"
        click.echo(f"  {finding.kind.value} {finding.ref}: {outcome_word}: {finding.reason}")
    if any(c.left_behind or c.repaired for c in outcome.counts.values()):
        click.echo(f"every row left behind or repaired, with the reason: {report}")


def print_verification(verification: Verification) -> None:
    for kind, tally in verification.tallies.items():
        click.echo(
            f"verify {kind}: {tally.in_source} in the source, {tally.read} read, "
            f"{tally.matching} matching, {tally.missing} missing, {tally.different} different, "
            f"{tally.left_behind} left behind by the rules, {tally.duplicates} duplicate ids"
        )
    for line in verification.mismatches:
        click.echo(f"  {line}")
    click.echo("verified: every migrated record matches" if verification.ok else "verify FAILED")
