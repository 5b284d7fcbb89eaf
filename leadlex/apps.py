from pathlib import Path

from django.apps import AppConfig


class LeadlexConfig(AppConfig):
    name = "leadlex"
    verbose_name = "LeadLex platform"

    def ready(self) -> None:
        from django.conf import settings

        from leadlex import (
            auth,  # noqa: F401 - registers its system check
            schema,  # noqa: F401 - registers the OpenAPI auth extension
        )

        # WhiteNoise warns at every start when STATIC_ROOT is missing (before the
        # first collectstatic); an empty directory simply serves nothing yet.
        if settings.STATIC_ROOT:
            Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
