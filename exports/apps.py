from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"

    def ready(self) -> None:
        from exports import contacts

        contacts.register()
        # The workspace admin's "Export all contacts" actions (that admin is leadlex's and imports no app).
        from exports.admin import export_all_contacts_csv, export_all_contacts_ndjson
        from leadlex.admin import workspace_admin_extend

        workspace_admin_extend(actions=[export_all_contacts_csv, export_all_contacts_ndjson])
        # The Close dialect's kinds (exports/close), registered for web and worker alike.
        from exports.close import kinds as close_kinds

        close_kinds.register()
