from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"

    def ready(self) -> None:
        from contacts.models import Contact
        from leadlex.admin import WorkspaceCount, workspace_admin_extend

        # The workspace list's "contacts" column (the workspace admin is leadlex's and imports no app).
        workspace_admin_extend(counts=[WorkspaceCount(name="contact_count", title="contacts", model=Contact)])
