from django.urls import path

from imports import api

app_name = "imports"
urlpatterns = [
    path("import/contacts", api.ImportContactsView.as_view(), name="import-contacts"),
    path("import/contacts/preview", api.ImportContactsPreviewView.as_view(), name="import-contacts-preview"),
    path("import/contacts/<str:job_id>", api.ImportContactsStatusView.as_view(), name="import-contacts-status"),
]
