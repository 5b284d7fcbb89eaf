from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"

    def ready(self) -> None:
        from django.conf import settings

        from exports import contacts

        contacts.register()
        # The workspace admin's "Export all contacts" actions (that admin is leadlex's and imports no app).
        from exports.admin import export_all_contacts_csv, export_all_contacts_ndjson
        from leadlex.admin import workspace_admin_extend

        workspace_admin_extend(actions=[export_all_contacts_csv, export_all_contacts_ndjson])
        # The Close dialect's kinds (exports/close), registered for web and worker alike.
        from exports.close import kinds as close_kinds

        close_kinds.register()
        # Periodic sweepers (celery beat reads settings.CELERY_BEAT_SCHEDULE lazily,
        # after apps are ready). setdefault: a deployment may override either entry.
        schedule = settings.CELERY_BEAT_SCHEDULE
        schedule.setdefault("exports-sweep-stale", {"task": "exports.sweep_stale", "schedule": 60.0})
        schedule.setdefault("exports-sweep-expired", {"task": "exports.sweep_expired", "schedule": 3600.0})
