"""``manage.py create_workspace NAME [--timezone TZ] [--inactive]``: prints the new id."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create a workspace. Fails (exit 1) if the name is taken or the time zone is unknown."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone name, e.g. Europe/Paris (default UTC)")
        parser.add_argument("--inactive", action="store_true", help="create it with its subscription inactive")

    def handle(self, *args: Any, name: str, timezone: str, inactive: bool, **options: Any) -> None:
        from leadlex.services import workspace_create

        try:
            workspace = workspace_create(name=name, timezone_name=timezone, is_active=not inactive)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(str(workspace.pk))
        self.stderr.write(f"Created workspace {workspace.name!r} ({workspace.timezone}).")
