"""``manage.py create_api_key --workspace NAME --scopes read:contacts,write:contacts``

Prints only the key on stdout, so that ``KEY=$(manage.py create_api_key ...)`` works.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from leadlex.models import ALL_SCOPES


class Command(BaseCommand):
    help = "Create an API key for a workspace and print it (it cannot be shown again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="workspace name")
        parser.add_argument(
            "--scopes",
            default=",".join(ALL_SCOPES),
            help=f"comma-separated, from {', '.join(ALL_SCOPES)} (default: all)",
        )
        parser.add_argument("--owner-email", default="", help="notified by jobs started with this key")
        parser.add_argument("--name", default="", help="a label for humans")
        parser.add_argument("--expires-in-days", type=int, default=None, help="expire after this many days")

    def handle(
        self,
        *args: Any,
        workspace: str,
        scopes: str,
        owner_email: str,
        name: str,
        expires_in_days: int | None,
        **options: Any,
    ) -> None:
        from leadlex.models import Workspace
        from leadlex.services import api_key_create, scopes_parse

        try:
            ws = Workspace.objects.get(name=workspace)
        except Workspace.DoesNotExist:
            raise CommandError(f"No workspace named {workspace!r}; create it with create_workspace.") from None
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            _, raw = api_key_create(
                workspace=ws, scopes=scopes_parse(scopes), owner_email=owner_email, name=name, expires_at=expires_at
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(raw)
