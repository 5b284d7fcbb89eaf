from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"

    def ready(self) -> None:
        from django.conf import settings

        from exports import contacts

        contacts.register()
        # Periodic sweepers (celery beat reads settings.CELERY_BEAT_SCHEDULE lazily,
        # after apps are ready). setdefault: a deployment may override either entry.
        schedule = settings.CELERY_BEAT_SCHEDULE
        schedule.setdefault("exports-sweep-stale", {"task": "exports.sweep_stale", "schedule": 60.0})
        schedule.setdefault("exports-sweep-expired", {"task": "exports.sweep_expired", "schedule": 3600.0})
