from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"

    def ready(self) -> None:
        from exports import contacts

        contacts.register()
        # The Close dialect's kinds and admin (exports/close), registered for web and worker alike.
        from exports.close import admin as close_admin  # noqa: F401 - imported for its admin registrations
        from exports.close import kinds as close_kinds

        close_kinds.register()
