from django.urls import path

from imports import api

app_name = "imports"
urlpatterns = [
    path("import/contacts", api.ImportContactsView.as_view(), name="import-contacts"),
    path("import/mappings", api.ImportMappingsView.as_view(), name="import-mappings"),
    path("import/mappings/<uuid:mapping_id>", api.ImportMappingDetailView.as_view(), name="import-mapping"),
    path("import/contacts/preview", api.ImportContactsPreviewView.as_view(), name="import-contacts-preview"),
    path("uploads", api.UploadsView.as_view(), name="uploads"),
    path("uploads/<str:upload_id>", api.UploadDetailView.as_view(), name="upload"),
    path("uploads/<str:upload_id>/complete", api.UploadCompleteView.as_view(), name="upload-complete"),
    path("import/contacts/<str:job_id>", api.ImportContactsStatusView.as_view(), name="import-contacts-status"),
]
