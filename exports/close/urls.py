from django.urls import path

from exports.close import api

app_name = "close"
urlpatterns: list = [
    path("export/lead/", api.LeadExportCreateApi.as_view(), name="export-lead"),
    path("export/opportunity/", api.OpportunityExportCreateApi.as_view(), name="export-opportunity"),
    path("export/", api.ExportListApi.as_view(), name="export-list"),
    path("export/<str:export_id>/", api.ExportDetailApi.as_view(), name="export-detail"),
    path("export/<str:export_id>/download", api.ExportDownloadApi.as_view(), name="export-download"),
]
