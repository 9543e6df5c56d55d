from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from accounts.legacy import ImportReport, legacy_import
from accounts.legacy_reader import LegacyError, Tables


class ProgressBar:
    """`[#####     ] 500/1000 messages`, redrawn in place on stderr."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out

    def __call__(self, done: int, total: int, what: str) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        line = f"\r[{'#' * filled}{' ' * (self.WIDTH - filled)}] {done}/{total} {what}"
        # Plain text: OutputWrapper would colour stderr as an error on a terminal.
        self.out.write(line, style_func=lambda text: text, ending="\n" if done >= total else "")
        self.out.flush()


class Command(BaseCommand):
    help = (
        "Import the original Flask app's SQLite database: users with their passwords, and groups and "
        "messages when it has them, in one transaction. See docs/legacy-import.md."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the legacy SQLite file (opened read-only)")
        parser.add_argument("--dry-run", action="store_true", help="report what would happen, write nothing")
        parser.add_argument("--progress", action="store_true", help="show progress even when stderr is no terminal")
        parser.add_argument("--users-table", default="user", help="default: %(default)s")
        parser.add_argument("--username-column", default="username", help="default: %(default)s")
        parser.add_argument("--password-column", default="password", help="default: %(default)s")
        optional = "default: the first of {} that exists; an empty name skips them"
        parser.add_argument("--groups-table", help=optional.format("groups, group"))
        parser.add_argument("--members-table", help=optional.format("group_members, members, membership"))
        parser.add_argument("--messages-table", help=optional.format("messages, message"))

    def handle(self, *args, **options) -> None:
        tables = Tables(
            users=options["users_table"],
            username=options["username_column"],
            password=options["password_column"],
            groups=options["groups_table"],
            members=options["members_table"],
            messages=options["messages_table"],
        )
        show_progress = options["progress"] or self.stderr.isatty()
        try:
            report = legacy_import(
                path=options["path"],
                dry_run=options["dry_run"],
                tables=tables,
                progress=ProgressBar(self.stderr) if show_progress else None,
            )
        except LegacyError as exc:
            raise CommandError(str(exc)) from None
        for line in report_lines(report):
            self.stdout.write(line)


def _kind_lines(label: str, done: str, created, already, taken, rejected) -> list[str]:
    """The report lines of users or groups: counts, then what was taken or rejected and why."""
    lines = [
        f"{label}: {len(created)} {done}, {len(already)} already imported, "
        f"{len(taken)} skipped (name taken here), {len(rejected)} rejected."
    ]
    if taken:
        lines.append("  Taken here, not overwritten: " + ", ".join(taken))
    return lines + [f"  Rejected {name}: {reason}" for name, reason in rejected]


def report_lines(report: ImportReport) -> list[str]:
    done = "would be created" if report.dry_run else "created"
    lines = ["Dry run: nothing was written."] if report.dry_run else []
    lines += _kind_lines(
        "Users", done, report.users_created, report.users_already_imported, report.users_taken, report.users_rejected
    )
    lines += _kind_lines(
        "Groups",
        done,
        report.groups_created,
        report.groups_already_imported,
        report.groups_taken,
        report.groups_rejected,
    )
    if report.members_dropped:
        lines.append(f"  {report.members_dropped} membership(s) left out: the member was not imported.")
    lines.append(
        f"Messages: {report.messages_created} {done}, {report.messages_already_imported} already imported, "
        f"{sum(report.messages_skipped.values()) + len(report.images_refused)} skipped."
    )
    if report.images_created or report.images_refused:
        lines.append(f"  Images: {report.images_created} {done}, {len(report.images_refused)} refused.")
    lines += [f"  Skipped, {reason}: {count}" for reason, count in sorted(report.messages_skipped.items())]
    lines += [f"  Skipped {refusal}" for refusal in report.images_refused]
    return lines
