from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"

    def ready(self) -> None:
        # Each dialect's kinds on the one engine, registered for web and worker alike.
        from exports.close import kinds as close_kinds
        from exports.leadlex import kinds as leadlex_kinds

        leadlex_kinds.register()
        close_kinds.register()
        # The workspace admin's "Export all contacts" actions (that admin is leadlex's and imports no app).
        from exports.leadlex.admin import export_all_contacts_csv, export_all_contacts_ndjson
        from leadlex.admin import workspace_admin_extend

        workspace_admin_extend(actions=[export_all_contacts_csv, export_all_contacts_ndjson])
